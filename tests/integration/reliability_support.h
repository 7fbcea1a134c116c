// Shared by the reliability tests (reliability_test.cpp, storage_fault_test.cpp,
// redis_fault_test.cpp): the real daemon under the faults production brings.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <string>

namespace reliability {

inline std::string integrity_check(SQLite::Database& db) {
  SQLite::Statement check(db, "PRAGMA integrity_check");
  std::string result;
  while (check.executeStep()) result += check.getColumn(0).getString();
  return result;
}

}  // namespace reliability
