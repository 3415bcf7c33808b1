"""Image files in and out: the one reader and the one writer that the data sets, the
classical methods and prediction share.

* :mod:`~cnnzoo.images.read`: decode a file (every error Pillow can raise becomes one
  ``ValueError`` naming the file), as a float tensor in [0, 1] for the networks, as its
  stored values for the classical methods, or as a mask / label map;
* :mod:`~cnnzoo.images.write`: label maps (palette PNGs whose pixel values are the labels)
  and overlays, written atomically;
* :mod:`~cnnzoo.images.arrays`: the checked float view of an image array.

This package imports nothing from cnnzoo but :mod:`cnnzoo.utils`.
"""
