"""MatConvNet model files -> :class:`matconv_port.netspec.NetSpec` (installed as
``matconv_port.converters``).

* :func:`read_mat` / :func:`write_mat`: MAT v5/v6/v7/v7.3 <-> neutral Python values
  (:mod:`.mattypes`: ndarray, str, dict, :class:`MatCell`, :class:`MatStructArray`,
  :class:`MatOpaque`).
* :func:`load_netspec`: find the net in a file (bare, checkpoint, ``-struct``) and
  convert it: DagNN structs as saved, SimpleNN through ``vl_simplenn_tidy`` +
  ``dagnn.DagNN.fromSimpleNN`` semantics.
* :func:`netspec_to_dagnn_struct`: the inverse (the struct ``saveobj`` writes; give it
  to ``write_mat`` as ``{"net": ...}``; ``dagnn.DagNN.loadobj`` accepts it).
"""
from .loader import find_net, load_netspec, netspec_from_variables, prune_to_outputs
from .matfile import mat_version, read_mat, write_mat
from .mattypes import MatCell, MatOpaque, MatStructArray, mat_equal
from .to_dagnn import netspec_to_dagnn_struct

__all__ = ["load_netspec", "netspec_from_variables", "find_net", "prune_to_outputs", "read_mat",
           "write_mat", "mat_version", "netspec_to_dagnn_struct", "MatCell", "MatStructArray", "MatOpaque", "mat_equal"]
