// The backend factory behind the RegistryStore contract suite
// (registry_store_contract.h): one fresh database per test, of either backend,
// that a test can open a store on as often as it likes. Every store it opens
// sees what the earlier ones wrote, so closing one and opening the next is a
// "reopen" (the SQLite file, or the PostgreSQL database, stays). The two hooks
// reach under the store to set up what only the database itself can do; each
// backend implements them in its own SQL.
//
// PostgreSQL: one real server per test process (tests/support/postgres_server.h),
// started on the first PostgreSQL test and stopped when the process ends; a
// fresh database on it per test. SQLite: a file in a fresh temp directory.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "store/registry_store.h"

namespace contract_test {

enum class Backend { sqlite, postgres };

// "Sqlite" or "Postgres": the suffix of the test names.
std::string backend_name(Backend backend);
// So that googletest prints the parameter by name, not as bytes.
inline void PrintTo(Backend backend, std::ostream* out) {
  *out << backend_name(backend);
}

// What a test may vary between stores it opens; the rest is each backend's default.
struct OpenOptions {
  std::optional<std::uint64_t> change_retention;
};

class BackendDatabase {
 public:
  virtual ~BackendDatabase() = default;

  // A new store on this test's database (migrating it on the first call). Throws
  // StoreError as the store's constructor does.
  virtual std::unique_ptr<store::RegistryStore> open(const OpenOptions& options = {}) = 0;
  // Writes `version` into the database's schema_version row, behind the store's back.
  virtual void set_schema_version(int version) = 0;
  // Installs a trigger that makes inserting the instance `id` fail with `message`
  // (inside the mutation's savepoint).
  virtual void refuse_instance(const std::string& id, const std::string& message) = 0;
};

// A fresh, empty database of `backend`. Throws std::runtime_error when its server
// cannot be started.
std::unique_ptr<BackendDatabase> make_database(Backend backend);

}  // namespace contract_test
