//! kubelet (to be written)
