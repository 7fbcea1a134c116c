#include <gtest/gtest.h>

#include "store/postgres/postgres_store.h"

namespace {

using store::redact_database_url;

TEST(PostgresRedactDatabaseUrl, RemovesThePasswordOfTheUserinfo) {
  EXPECT_EQ(redact_database_url("postgresql://app:s3cret@db.example:5432/registry"),
            "postgresql://app@db.example:5432/registry");
  EXPECT_EQ(redact_database_url("postgres://app:p%40ss@10.0.0.1/registry?sslmode=require"),
            "postgres://app@10.0.0.1/registry?sslmode=require");
}

TEST(PostgresRedactDatabaseUrl, LeavesAUrlWithoutPasswordAlone) {
  for (const char* url : {"postgresql://app@db:5432/registry", "postgresql://db/registry",
                          "postgresql://app@db/registry?sslmode=verify-full&connect_timeout=2",
                          "postgresql:///registry?host=/var/run/postgresql"}) {
    EXPECT_EQ(redact_database_url(url), url);
  }
}

TEST(PostgresRedactDatabaseUrl, RemovesAPasswordQueryParameter) {
  EXPECT_EQ(redact_database_url("postgresql://app@db/registry?password=s3cret"),
            "postgresql://app@db/registry");
  EXPECT_EQ(redact_database_url("postgresql://app@db/registry?sslmode=require&password=s3cret&"
                                "application_name=x"),
            "postgresql://app@db/registry?sslmode=require&application_name=x");
  EXPECT_EQ(redact_database_url("postgresql://app:a@db/r?password=b"), "postgresql://app@db/r");
}

TEST(PostgresRedactDatabaseUrl, RemovesThePasswordOfAKeywordValueString) {
  EXPECT_EQ(redact_database_url("host=db password=s3cret dbname=registry"),
            "host=db dbname=registry");
  EXPECT_EQ(redact_database_url("host=db password='a b' dbname=registry"),
            "host=db dbname=registry");
}

}  // namespace
