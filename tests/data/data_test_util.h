// The data-layer tests' helpers: all from tests/common/ (paths, temp dirs, the process runner,
// file helpers), gathered in one include. Test-only; not linked into circuitlab.
#pragma once
#include "tests/common/files.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"
