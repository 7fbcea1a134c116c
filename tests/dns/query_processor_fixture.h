// The fixture of the query processor tests: a zone, a fake store and helpers
// that run a query and decode the response with ldns.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "dns/query_processor.h"
#include "test_support.h"

namespace dns::processor_test {

using testing::Bytes;
using testing::FakeLookup;
using testing::make_instance;
using testing::make_query;
using testing::make_snapshot;
using testing::QuerySpec;
using testing::records;
using testing::Response;

inline constexpr const char* kZone = R"(
$ORIGIN discovery.
$TTL 300
@        60  IN SOA ns1.discovery. hostmaster.discovery. 7 3600 600 86400 30
@        300 IN NS  ns1.discovery.
@        300 IN MX  10 mail.discovery.
ns1      300 IN A   127.0.0.1
ns1      300 IN AAAA ::1
mail     300 IN A   192.0.2.25
www      120 IN A   192.0.2.80
www      120 IN A   192.0.2.81
www      120 IN TXT "hello world"
alias    300 IN CNAME www.discovery.
deep.ent 300 IN A   192.0.2.99
)";

class QueryProcessorTest : public ::testing::Test {
 protected:
  QueryProcessorTest() {
    zone_path_ = temp_.write("discovery.zone", kZone);
    lookup_.set(make_snapshot(
        "web", {make_instance("web", "a1", "10.0.0.1", 8080, 10, {"primary"}),
                make_instance("web", "a2", "10.0.0.2", 8081, 20, {"canary", "primary"}),
                make_instance("web", "b6", "2001:db8::6", 8082, 30)}));
    lookup_.set(make_snapshot("v6only", {make_instance("v6only", "x", "2001:db8::1")}));
    rebuild();
  }

  void rebuild() {
    processor_ = std::make_unique<QueryProcessor>(Zone::load(zone_path_.string(), "discovery."),
                                                  lookup_, options_);
  }

  Outcome run(const Bytes& query, Transport transport = Transport::udp) {
    buffer_.assign(processor_->buffer_size(transport), 0);
    last_ = processor_->process(query, transport, buffer_);
    return last_;
  }

  Response ask(const QuerySpec& spec, Transport transport = Transport::udp) {
    return answer_of(run(make_query(spec), transport));
  }

  Response answer_of(const Outcome& outcome) {
    EXPECT_EQ(outcome.kind, Outcome::Kind::respond);
    EXPECT_LE(outcome.size, buffer_.size());
    Response response(buffer_.data(), outcome.size);
    EXPECT_TRUE(response.parsed()) << "ldns could not parse our response";
    return response;
  }

  Bytes response_bytes() const {
    return {buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(last_.size)};
  }

  testing::TempDir temp_;
  std::filesystem::path zone_path_;
  FakeLookup lookup_;
  Options options_;
  std::unique_ptr<QueryProcessor> processor_;
  Bytes buffer_;
  Outcome last_;
};

// The negative-answer SOA: TTL min(60, 30) = 30.
const std::vector<std::string> kNegativeSoa =
    records({"discovery. 30 IN SOA ns1.discovery. hostmaster.discovery. 7 3600 600 86400 30"});

}  // namespace dns::processor_test
