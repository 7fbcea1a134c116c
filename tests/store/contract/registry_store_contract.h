// The RegistryStore contract suite's fixture (store/registry_store.h): every
// test in tests/store/contract/ runs once per backend, as
// Backends/<Suite>.<Test>/Sqlite and Backends/<Suite>.<Test>/Postgres. The
// contract is one, so its tests are written once: a behaviour both stores must
// share lives here, what only one backend has (its files, its server, its
// schema history) stays in tests/store/sqlite/ or tests/store/postgres/.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <span>
#include <string>

#include "store/registry_store.h"
#include "tests/store/contract/store_backend.h"
#include "tests/store/store_test_support.h"

namespace contract_test {

using store_test::kNow;
using store_test::make_registration;

class RegistryStoreContract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    try {
      database_ = make_database(GetParam());
    } catch (const std::exception& error) {
      FAIL() << "no " << backend_name(GetParam()) << " database: " << error.what();
    }
  }

  // A new store on this test's database; a second call reopens what the first wrote.
  std::unique_ptr<store::RegistryStore> open(const OpenOptions& options = {}) {
    return database_->open(options);
  }
  BackendDatabase& database() { return *database_; }

  static store::MutationResult apply(store::RegistryStore& db, store::Mutation mutation,
                                     store::TimePoint now = kNow) {
    return db.apply(std::span(&mutation, 1), now)[0];
  }

 private:
  std::unique_ptr<BackendDatabase> database_;
};

}  // namespace contract_test
