// One logger per component ("registry", "http", "dns", "cache", "health", ...),
// registered by the daemon at start-up. Code run without the daemon (tests,
// benchmarks) gets spdlog's default logger instead.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

namespace store {

inline std::shared_ptr<spdlog::logger> component_logger(const char* name) {
  auto logger = spdlog::get(name);
  return logger ? logger : spdlog::default_logger();
}

}  // namespace store
