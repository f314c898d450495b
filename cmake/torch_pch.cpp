// The translation unit that owns circuitlab's one precompiled <torch/torch.h> (CMake target
// circuitlab_torch_pch); every LibTorch target reuses that header instead of compiling its own.
// Nothing else lives here.
