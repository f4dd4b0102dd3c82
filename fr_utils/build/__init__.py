"""Maintainers' tools, never needed by the course at run time (they load TensorFlow's graph tools).

* :mod:`fr_utils.build.convert`: fetch the original frozen graph, convert it to the
  Keras model, save the weights and their manifest (``python -m fr_utils.weights build``);
* :mod:`fr_utils.build.frozen_graph`: the original graph, run as it is, the reference;
* :mod:`fr_utils.build.fidelity`: Keras against that reference on real faces
  (``python -m fr_utils.build.fidelity``, ``make fidelity``).
"""
