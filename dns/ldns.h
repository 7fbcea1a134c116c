// The one way to include ldns in this project.
//
// ldns/common.h does `#define bool _Bool` (and true/false) unless <stdbool.h> came
// first; those macros break every C++ standard header included after it. Including
// <stdbool.h> here, before ldns, keeps them out. Only zone loading and the tests use
// ldns: the query path parses and encodes wire format by hand (see wire.h).
#pragma once

// clang-format off
#include <stdbool.h>
#include <ldns/ldns.h>
// clang-format on
