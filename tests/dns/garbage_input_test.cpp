// Hostile input never crashes the processor, never makes it write past its
// buffer, and every response it does produce is a well-formed DNS message.
#include <gtest/gtest.h>

#include <random>

#include "dns/query_processor.h"
#include "test_support.h"

namespace dns {
namespace {

using testing::Bytes;
using testing::make_query;

class GarbageInputTest : public ::testing::Test {
 protected:
  GarbageInputTest() {
    lookup_.set(testing::make_snapshot(
        "web", {testing::make_instance("web", "a1", "10.0.0.1", 80, 1, {"primary"}),
                testing::make_instance("web", "b2", "2001:db8::2", 81)}));
  }

  // Processes `query` on both transports and checks the invariants.
  void check(const Bytes& query) {
    for (const Transport transport : {Transport::udp, Transport::tcp}) {
      // A guard zone after the buffer catches writes past its end.
      const std::size_t size = processor_.buffer_size(transport);
      Bytes buffer(size + 64, 0xAB);
      const Outcome outcome = processor_.process(query, transport, std::span(buffer.data(), size));
      for (std::size_t i = size; i < buffer.size(); ++i) ASSERT_EQ(buffer[i], 0xAB);
      if (outcome.kind == Outcome::Kind::needs_lookup) {
        ASSERT_TRUE(outcome.pending);
        ASSERT_FALSE(outcome.pending->service().empty());
        continue;
      }
      if (outcome.kind == Outcome::Kind::drop) {
        ASSERT_TRUE(query.size() < 12 || (query[2] & 0x80) != 0);
        continue;
      }
      ASSERT_GE(outcome.size, 12u);
      ASSERT_LE(outcome.size, size);
      testing::Response response(buffer.data(), outcome.size);
      ASSERT_TRUE(response.parsed()) << "unparseable response";
      ASSERT_EQ(response.id(), (query[0] << 8) | query[1]);
    }
  }

  testing::FakeLookup lookup_;
  QueryProcessor processor_{
      Zone::load(testing::source_dir() + "/zones/discovery.zone", "discovery."), lookup_, {}};
};

TEST_F(GarbageInputTest, RandomBytes) {
  std::mt19937 random(12345);
  for (int i = 0; i < 20000; ++i) {
    Bytes query(random() % 600);
    for (auto& byte : query) byte = static_cast<std::uint8_t>(random());
    if (query.size() > 5 && i % 2 == 0) {
      query[2] &= 0x07;  // QR=0, opcode QUERY: get past the first checks
      query[4] = 0;
      query[5] = 1;
    }
    check(query);
  }
}

TEST_F(GarbageInputTest, EveryPrefixOfValidQueries) {
  const std::vector<Bytes> queries = {
      make_query({.name = "web.service.discovery."}),
      make_query({.name = "_web._tcp.service.discovery.", .type = 33, .edns_payload = 4096}),
      make_query({.name = "discovery.",
                  .type = 255,
                  .edns_payload = 1232,
                  .edns_options = {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}}),
  };
  for (const Bytes& query : queries) {
    for (std::size_t size = 0; size <= query.size(); ++size) {
      check(Bytes(query.begin(), query.begin() + static_cast<std::ptrdiff_t>(size)));
    }
  }
}

TEST_F(GarbageInputTest, BitFlipsOfValidQueries) {
  std::mt19937 random(777);
  const Bytes base = make_query({.name = "primary.web.service.discovery.",
                                 .type = 33,
                                 .edns_payload = 1232,
                                 .edns_options = {0, 10, 0, 2, 1, 2}});
  for (int i = 0; i < 20000; ++i) {
    Bytes query = base;
    const int flips = 1 + static_cast<int>(random() % 4);
    for (int f = 0; f < flips; ++f)
      query[random() % query.size()] ^= static_cast<std::uint8_t>(1u << (random() % 8));
    check(query);
  }
}

TEST_F(GarbageInputTest, CompressionLoopsInTheAdditionalSection) {
  Bytes query = make_query({.name = "web.service.discovery."});
  query[11] = 2;  // ARCOUNT 2
  const std::size_t first = query.size();
  // Owner: pointer to itself, then one pointing to the next record.
  query.insert(query.end(), {0xC0, static_cast<std::uint8_t>(first), 0, 1, 0, 1, 0, 0, 0, 0, 0, 0});
  query.insert(query.end(),
               {0xC0, static_cast<std::uint8_t>(first + 14), 0, 41, 4, 0, 0, 0, 0, 0, 0, 0});
  check(query);
  const Outcome outcome =
      processor_.process(query, Transport::udp, std::span<std::uint8_t>(Bytes(1232).data(), 1232));
  EXPECT_EQ(outcome.rcode, 1) << "FORMERR";
}

}  // namespace
}  // namespace dns
