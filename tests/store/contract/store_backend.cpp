// The two backends of the contract suite (store_backend.h).
#include "tests/store/contract/store_backend.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"
#include "tests/support/postgres_server.h"
#include "tests/support/process.h"

namespace contract_test {
namespace {

class SqliteDatabase final : public BackendDatabase {
 public:
  std::unique_ptr<store::RegistryStore> open(const OpenOptions& options) override {
    store::StoreOptions store_options{.path = path_};
    if (options.change_retention) store_options.change_retention = *options.change_retention;
    return std::make_unique<store::SqliteStore>(store_options);
  }
  void set_schema_version(int version) override {
    SQLite::Database raw(path_, SQLite::OPEN_READWRITE);
    raw.exec("UPDATE schema_version SET version = " + std::to_string(version));
  }
  void refuse_instance(const std::string& id, const std::string& message) override {
    SQLite::Database raw(path_, SQLite::OPEN_READWRITE);
    raw.exec("CREATE TRIGGER refuse BEFORE INSERT ON instances WHEN NEW.id = '" + id +
             "' BEGIN SELECT RAISE(ABORT, '" + message + "'); END");
  }

 private:
  test_support::TempDir dir_;
  std::string path_ = dir_.file("registry.db");
};

// The process's one server: started by the first PostgreSQL test, restarted by a
// later one if it stopped answering, killed when the tests end.
class PostgresServerEnvironment final : public ::testing::Environment {
 public:
  static test_support::PostgresServer& server() {
    if (!server_) {
      server_ = std::make_unique<test_support::PostgresServer>();
      if (!server_->start()) throw std::runtime_error("postgres did not start:\n" + server_->log());
    } else if (!server_->accepts() && !server_->restart()) {
      throw std::runtime_error("postgres did not restart:\n" + server_->log());
    }
    return *server_;
  }
  void TearDown() override { server_.reset(); }

 private:
  static inline std::unique_ptr<test_support::PostgresServer> server_;
};

[[maybe_unused]] ::testing::Environment* const kPostgresEnvironment =
    ::testing::AddGlobalTestEnvironment(new PostgresServerEnvironment);

class PostgresDatabase final : public BackendDatabase {
 public:
  PostgresDatabase() : server_(PostgresServerEnvironment::server()) {
    database_ = "contract_" + std::to_string(++databases_);
    server_.psql("CREATE DATABASE " + database_, "postgres");
  }
  std::unique_ptr<store::RegistryStore> open(const OpenOptions& options) override {
    store::PostgresOptions store_options;
    store_options.url = server_.url(database_);
    if (options.change_retention) store_options.change_retention = *options.change_retention;
    return std::make_unique<store::PostgresStore>(store_options);
  }
  void set_schema_version(int version) override {
    server_.psql("UPDATE schema_version SET version = " + std::to_string(version), database_);
  }
  void refuse_instance(const std::string& id, const std::string& message) override {
    server_.psql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id = '" + id +
            "' THEN RAISE EXCEPTION '" + message +
            "'; END IF; RETURN NEW; END $$; CREATE TRIGGER refuse BEFORE INSERT ON "
            "instances FOR EACH ROW EXECUTE FUNCTION refuse()",
        database_);
  }

 private:
  static inline int databases_ = 0;
  test_support::PostgresServer& server_;
  std::string database_;
};

}  // namespace

std::string backend_name(Backend backend) {
  return backend == Backend::sqlite ? "Sqlite" : "Postgres";
}

std::unique_ptr<BackendDatabase> make_database(Backend backend) {
  if (backend == Backend::sqlite) return std::make_unique<SqliteDatabase>();
  return std::make_unique<PostgresDatabase>();
}

}  // namespace contract_test
