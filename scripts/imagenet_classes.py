#!/usr/bin/python3
# imagenet_classes.py - writes the 1000 ImageNet class names, one per line in
# class-index order, from torchvision's _meta.py (Debian python3-torchvision).
#   imagenet_classes.py SRC/_meta.py OUT/imagenet_classes.txt
# The file is parsed (ast), not imported, so no torch is needed.
import ast
import os
import sys

src, out = sys.argv[1], sys.argv[2]
tree = ast.parse(open(src, encoding="utf-8").read(), src)
names = None
for node in tree.body:
    if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in node.targets):
        names = ast.literal_eval(node.value)
if not names or len(names) != 1000 or any("\n" in n for n in names):
    sys.exit(f"{src}: no list of 1000 _IMAGENET_CATEGORIES")
os.makedirs(os.path.dirname(out), exist_ok=True)
tmp = out + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write("".join(n + "\n" for n in names))
os.replace(tmp, out)
