// ort_run.js - times ONNX Runtime (npm onnxruntime-node) on one model for
// bench/nn_models.py: node ort_run.js MODEL.onnx BATCH THREADS ITERS
// prints one JSON line {"ips": images per second, "version": ...}.
const path = require('path');
const ort = require(path.join(__dirname, 'ort', 'node_modules', 'onnxruntime-node'));

async function main() {
  const [model, batchS, threadsS, itersS] = process.argv.slice(2);
  const batch = +batchS, threads = +threadsS, iters = +itersS;
  const sess = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all'});
  const inName = sess.inputNames[0];
  const meta = sess.inputMetadata ? sess.inputMetadata[0] : null;
  const dims = meta && meta.shape ? meta.shape.slice() : null;
  const hw = +process.env.BENCH_HW;
  const shape = [batch, 3, hw, hw];
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i) * 0.5;
  const feeds = {[inName]: new ort.Tensor('float32', data, shape)};
  await sess.run(feeds); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) await sess.run(feeds);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const version = require(path.join(__dirname, 'ort', 'node_modules',
                                    'onnxruntime-node', 'package.json')).version;
  console.log(JSON.stringify({ips: batch * iters / s, version, dims}));
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
