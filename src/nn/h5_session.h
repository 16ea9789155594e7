/* h5_session.h - one lock and silenced error printing around every use of
 * libhdf5 (the Keras reader, keras.c, and writer, keras_save.c):
 *
 *     nn_h5_session s;
 *     nn_h5_begin(&s);     // locks; HDF5's automatic error printing off
 *     ... H5Fopen / H5Dread ...
 *     nn_h5_end(&s);       // clears the error stack, restores, unlocks
 */
#ifndef DLP_NN_H5_SESSION_H
#define DLP_NN_H5_SESSION_H

#include <hdf5.h>

typedef struct nn_h5_session {
  H5E_auto2_t old_fn;
  void *old_data;
} nn_h5_session;

void nn_h5_begin(nn_h5_session *s);
void nn_h5_end(nn_h5_session *s);

#endif /* DLP_NN_H5_SESSION_H */
