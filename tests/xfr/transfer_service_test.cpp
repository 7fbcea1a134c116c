// TransferService as a secondary sees it: queries built by ldns, every message
// of the response parsed by ldns (an independent decoder) and compared with
// the records the registry should produce. A real SQLite registry, the model
// refreshed by hand (no thread, no timing), no sockets: the service's streams
// are drained directly.
#include "xfr/transfer_service.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "dns/ldns.h"
#include "store/sqlite/sqlite_store.h"
#include "tests/store/store_test_support.h"

namespace xfr {
namespace {

using Bytes = std::vector<std::uint8_t>;
using store_test::kNow;
using store_test::make_registration;

constexpr const char* kSecret = "C5xJYuWXiRG9xmwGtUCTPrVedhdIZAw0k7FI3zJAjH4=";
constexpr const char* kOtherSecret = "b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXM=";
constexpr const char* kZoneText =
    "$TTL 3600\n"
    "@ IN SOA ns1 hostmaster 100 3600 600 86400 30\n"
    "@ IN NS ns1\n"
    "ns1 IN A 192.0.2.1\n";
const std::vector<std::string> kStaticRecords = {"discovery. 3600 IN NS ns1.discovery.",
                                                 "ns1.discovery. 3600 IN A 192.0.2.1"};

struct PktFree {
  void operator()(ldns_pkt* pkt) const { ldns_pkt_free(pkt); }
};
struct RdfFree {
  void operator()(ldns_rdf* rdf) const { ldns_rdf_deep_free(rdf); }
};
using Pkt = std::unique_ptr<ldns_pkt, PktFree>;
using Rdf = std::unique_ptr<ldns_rdf, RdfFree>;

class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "xfr_service_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// ---- ldns helpers ------------------------------------------------------------

std::string rr_text(const ldns_rr* rr) {
  char* printed = ldns_rr2str(rr);
  std::string text = printed ? printed : "(unprintable)";
  std::free(printed);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

// `text` as ldns prints it, so that expected and received records compare.
std::string canonical(const std::string& text) {
  ldns_rr* rr = nullptr;
  EXPECT_EQ(ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr), LDNS_STATUS_OK) << text;
  const std::string out = rr ? rr_text(rr) : "(unparsable) " + text;
  ldns_rr_free(rr);
  return out;
}

Bytes to_wire(const ldns_pkt* pkt) {
  std::uint8_t* wire = nullptr;
  std::size_t size = 0;
  EXPECT_EQ(ldns_pkt2wire(&wire, pkt, &size), LDNS_STATUS_OK);
  Bytes out(wire, wire + size);
  std::free(wire);
  return out;
}

Pkt parse(const Bytes& wire) {
  ldns_pkt* pkt = nullptr;
  EXPECT_EQ(ldns_wire2pkt(&pkt, wire.data(), wire.size()), LDNS_STATUS_OK);
  return Pkt(pkt);
}

// A transfer query; for IXFR (a client serial) with the client's SOA in the
// authority section (RFC 1995 section 3).
Pkt query_pkt(ldns_rr_type type, std::uint16_t id, std::optional<std::uint32_t> serial = {},
              const char* qname = "discovery.") {
  Pkt pkt(ldns_pkt_query_new(ldns_dname_new_frm_str(qname), type, LDNS_RR_CLASS_IN, 0));
  ldns_pkt_set_id(pkt.get(), id);
  if (serial) {
    const std::string soa = std::string(qname) + " 3600 IN SOA ns1.discovery. " +
                            "hostmaster.discovery. " + std::to_string(*serial) +
                            " 3600 600 86400 30";
    ldns_rr* rr = nullptr;
    EXPECT_EQ(ldns_rr_new_frm_str(&rr, soa.c_str(), 0, nullptr, nullptr), LDNS_STATUS_OK);
    ldns_pkt_push_rr(pkt.get(), LDNS_SECTION_AUTHORITY, rr);
  }
  return pkt;
}

Bytes axfr(std::uint16_t id, const char* qname = "discovery.") {
  return to_wire(query_pkt(LDNS_RR_TYPE_AXFR, id, {}, qname).get());
}

Bytes ixfr(std::uint16_t id, std::uint32_t serial) {
  return to_wire(query_pkt(LDNS_RR_TYPE_IXFR, id, serial).get());
}

// Every message of `stream`, in order.
std::vector<Bytes> drain(dns::MessageStream& stream) {
  std::vector<Bytes> messages;
  Bytes buffer(65535);
  while (messages.size() < 10'000) {
    const std::size_t size = stream.next(buffer);
    if (size == 0) break;
    messages.emplace_back(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(size));
  }
  return messages;
}

std::uint32_t soa_serial(const ldns_rr* rr) {
  return ldns_rdf2native_int32(ldns_rr_rdf(rr, 2));
}

// The answers of a transfer cut at each SOA: the SOA's serial and the records
// up to the next one (sorted: the order within a part is not specified).
struct Part {
  std::uint32_t serial = 0;  // 0: records before any SOA
  std::vector<std::string> records;
  friend bool operator==(const Part&, const Part&) = default;
};

[[maybe_unused]] std::ostream& operator<<(std::ostream& out, const Part& part) {
  out << "\n  SOA " << part.serial << " then " << part.records.size() << " records";
  for (std::size_t i = 0; i < part.records.size() && i < 20; ++i) {
    out << "\n    " << part.records[i];
  }
  return out;
}

std::vector<Part> parts(const std::vector<Bytes>& messages) {
  std::vector<Part> out;
  for (const Bytes& message : messages) {
    const Pkt pkt = parse(message);
    if (!pkt) continue;
    const ldns_rr_list* answers = ldns_pkt_answer(pkt.get());
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(answers); ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(answers, i);
      if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA) {
        out.push_back({soa_serial(rr), {}});
        continue;
      }
      if (out.empty()) out.emplace_back();
      out.back().records.push_back(rr_text(rr));
    }
  }
  for (Part& part : out) std::sort(part.records.begin(), part.records.end());
  return out;
}

Part part(std::uint32_t serial, const std::vector<std::string>& texts = {}) {
  Part out{serial, {}};
  for (const auto& text : texts) out.records.push_back(canonical(text));
  std::sort(out.records.begin(), out.records.end());
  return out;
}

// Header checks every response message passes: QR, AA, the ID, NOERROR, the
// question (qname and qtype) in the first message only.
void expect_headers(const std::vector<Bytes>& messages, std::uint16_t id, ldns_rr_type qtype) {
  for (std::size_t i = 0; i < messages.size(); ++i) {
    SCOPED_TRACE("message " + std::to_string(i));
    const Pkt pkt = parse(messages[i]);
    ASSERT_NE(pkt, nullptr);
    EXPECT_TRUE(ldns_pkt_qr(pkt.get()));
    EXPECT_TRUE(ldns_pkt_aa(pkt.get()));
    EXPECT_FALSE(ldns_pkt_tc(pkt.get()));
    EXPECT_EQ(ldns_pkt_id(pkt.get()), id);
    EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_NOERROR);
    EXPECT_LE(messages[i].size(), 65535u);
    EXPECT_GT(ldns_pkt_ancount(pkt.get()), 0);
    if (i > 0) {
      EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 0);
      continue;
    }
    ASSERT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
    const ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(pkt.get()), 0);
    EXPECT_EQ(ldns_rr_get_type(question), qtype);
    EXPECT_EQ(rr_text(question).rfind("discovery.", 0), 0u) << rr_text(question);
  }
}

// The one message of a refusal, with `rcode`.
void expect_refusal(dns::MessageStream* stream, std::uint16_t id, ldns_pkt_rcode rcode) {
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(stream->rcode(), static_cast<std::uint16_t>(rcode));
  const auto messages = drain(*stream);
  ASSERT_EQ(messages.size(), 1u);
  const Pkt pkt = parse(messages[0]);
  ASSERT_NE(pkt, nullptr);
  EXPECT_TRUE(ldns_pkt_qr(pkt.get()));
  EXPECT_EQ(ldns_pkt_id(pkt.get()), id);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), rcode);
  EXPECT_EQ(ldns_pkt_ancount(pkt.get()), 0);
  EXPECT_EQ(ldns_pkt_qdcount(pkt.get()), 1);
}

// The records an untagged instance contributes (TTL 5, SRV priority 1).
std::vector<std::string> instance_records(const std::string& service, const std::string& id,
                                          const std::string& address, int port) {
  const std::string type = address.find(':') == std::string::npos ? "A " : "AAAA ";
  const std::string owner = service + ".service.discovery. 5 IN ";
  const std::string target = id + "." + service + ".instance.discovery.";
  const std::string srv = "SRV 1 1 " + std::to_string(port) + " " + target;
  return {owner + type + address, owner + srv,
          "_" + service + "._tcp.service.discovery. 5 IN " + srv,
          target + " 5 IN " + type + address};
}

void append(std::vector<std::string>& to, const std::vector<std::string>& records) {
  to.insert(to.end(), records.begin(), records.end());
}

// ---- the fixture -------------------------------------------------------------

const store::IpAddress kAllowed = *store::IpAddress::parse("127.0.0.1");
const store::IpAddress kStranger = *store::IpAddress::parse("192.0.2.7");

class TransferServiceTest : public ::testing::Test {
 protected:
  ScratchDir dir;
  store::SqliteStore db{
      store::StoreOptions{.path = dir.file("registry.db"), .synchronous_full = false}};
  std::shared_ptr<const dns::Zone> zone = dns::Zone::parse(kZoneText, "discovery.");
  ZoneModel model{db, zone, model_options()};
  TransferService service{model, transfer_options()};

  static ZoneModelOptions model_options() {
    ZoneModelOptions out;
    out.settings = {*dns::Name::from_text("discovery."), 5, 1};
    return out;
  }
  static TransferOptions transfer_options() {
    return {{*store::IpPrefix::parse("127.0.0.0/8"), *store::IpPrefix::parse("::1/128")}, {}};
  }
  void apply(std::vector<store::Mutation> mutations) {
    for (const auto& result : db.apply(mutations, kNow)) {
      ASSERT_TRUE(result.changed()) << store::to_string(result.outcome) << " " << result.error;
    }
  }
  // Registers `registration`; returns the records it adds (untagged).
  std::vector<std::string> add(store::Registration registration) {
    auto records = instance_records(registration.service, registration.id,
                                    registration.address.to_string(), registration.port);
    apply({store::Upsert{std::move(registration)}});
    return records;
  }
  // `count` instances over ten services, in one batch; returns their records.
  std::vector<std::string> add_many(int count) {
    std::vector<store::Mutation> mutations;
    std::vector<std::string> records;
    for (int i = 0; i < count; ++i) {
      const std::string address =
          "127.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
      auto registration =
          make_registration("svc" + std::to_string(i % 10), "instance-" + std::to_string(i),
                            address, static_cast<std::uint16_t>(8000 + i % 1000));
      append(records,
             instance_records(registration.service, registration.id, address, registration.port));
      mutations.emplace_back(std::in_place_type<store::Upsert>, std::move(registration));
    }
    apply(std::move(mutations));
    return records;
  }
  std::vector<std::string> everything(const std::vector<std::string>& services) const {
    auto all = kStaticRecords;
    append(all, services);
    return all;
  }
  std::uint32_t serial() const { return model.current()->serial; }
};

// ---- AXFR --------------------------------------------------------------------

TEST_F(TransferServiceTest, AxfrIsTheSoaEveryRecordOnceAndTheSoaAgain) {
  auto records = add(make_registration("web", "a", "127.0.0.2", 8080));
  append(records, add(make_registration("web", "b", "::1", 9090)));
  append(records, add(make_registration("api", "x", "127.0.0.9", 7000)));
  model.refresh();
  ASSERT_EQ(serial(), 103u);

  const auto stream = service.transfer(axfr(0x4d2), kAllowed);
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(stream->rcode(), 0);
  const auto messages = drain(*stream);
  ASSERT_EQ(messages.size(), 1u);
  expect_headers(messages, 0x4d2, LDNS_RR_TYPE_AXFR);
  EXPECT_EQ(parts(messages), (std::vector<Part>{part(103, everything(records)), part(103)}));
  EXPECT_EQ(service.stats().axfr, 1u);
}

TEST_F(TransferServiceTest, ALargeAxfrTakesSeveralMessagesQuestionInTheFirst) {
  const auto records = add_many(3000);
  model.refresh();
  const std::uint32_t current = serial();

  const auto stream = service.transfer(axfr(0xbeef), kAllowed);
  ASSERT_NE(stream, nullptr);
  const auto messages = drain(*stream);
  EXPECT_GE(messages.size(), 3u);  // 12,000 records of some 40 bytes
  for (const Bytes& message : messages) EXPECT_LE(message.size(), TransferStream::kMessageTarget);
  expect_headers(messages, 0xbeef, LDNS_RR_TYPE_AXFR);
  EXPECT_EQ(parts(messages),
            (std::vector<Part>{part(current, everything(records)), part(current)}));
}

TEST_F(TransferServiceTest, StrangersAreRefusedAndOtherNamesAreNotAuth) {
  add(make_registration("web", "a", "127.0.0.2", 8080));
  model.refresh();
  expect_refusal(service.transfer(axfr(1), kStranger).get(), 1, LDNS_RCODE_REFUSED);
  expect_refusal(service.transfer(axfr(2), *store::IpAddress::parse("::2")).get(), 2,
                 LDNS_RCODE_REFUSED);
  expect_refusal(service.transfer(ixfr(3, 100), kStranger).get(), 3, LDNS_RCODE_REFUSED);
  expect_refusal(service.transfer(axfr(4, "example."), kAllowed).get(), 4, LDNS_RCODE_NOTAUTH);
  expect_refusal(service.transfer(axfr(5, "web.service.discovery."), kAllowed).get(), 5,
                 LDNS_RCODE_NOTAUTH);
  EXPECT_EQ(service.stats().refused, 5u);
  EXPECT_EQ(service.stats().axfr, 0u);
}

// ---- IXFR --------------------------------------------------------------------

TEST_F(TransferServiceTest, IxfrFromAJournalledSerialSendsTheDifferencesInOrder) {
  add(make_registration("web", "a", "127.0.0.2", 8080));
  model.refresh();
  const std::uint32_t s_a = serial();
  const auto b = add(make_registration("web", "b", "127.0.0.3", 8081));
  model.refresh();
  const std::uint32_t s_b = serial();
  add(make_registration("web", "a", "127.0.0.2", 8082));  // a moves to another port
  model.refresh();
  const std::uint32_t s_c = serial();
  ASSERT_EQ(s_c, s_a + 2);

  const auto stream = service.transfer(ixfr(77, s_a), kAllowed);
  ASSERT_NE(stream, nullptr);
  const auto messages = drain(*stream);
  expect_headers(messages, 77, LDNS_RR_TYPE_IXFR);
  const std::string old_srv = " 5 IN SRV 1 1 8080 a.web.instance.discovery.";
  const std::string new_srv = " 5 IN SRV 1 1 8082 a.web.instance.discovery.";
  EXPECT_EQ(
      parts(messages),
      (std::vector<Part>{
          part(s_c),     // the current SOA opens
          part(s_a),     // first step: nothing removed,
          part(s_b, b),  // b added
          part(s_b, {"web.service.discovery." + old_srv, "_web._tcp.service.discovery." + old_srv}),
          part(s_c, {"web.service.discovery." + new_srv, "_web._tcp.service.discovery." + new_srv}),
          part(s_c),  // and closes
      }));
  EXPECT_EQ(service.stats().ixfr, 1u);
}

TEST_F(TransferServiceTest, IxfrFromTheCurrentSerialIsOneSoa) {
  add(make_registration("web", "a", "127.0.0.2", 8080));
  model.refresh();
  const auto stream = service.transfer(ixfr(78, serial()), kAllowed);
  ASSERT_NE(stream, nullptr);
  const auto messages = drain(*stream);
  ASSERT_EQ(messages.size(), 1u);
  expect_headers(messages, 78, LDNS_RR_TYPE_IXFR);
  const Pkt pkt = parse(messages[0]);
  ASSERT_EQ(ldns_pkt_ancount(pkt.get()), 1);
  EXPECT_EQ(parts(messages), std::vector<Part>{part(serial())});
}

TEST_F(TransferServiceTest, IxfrFromAnUnknownSerialIsTheWholeZone) {
  auto records = add(make_registration("web", "a", "127.0.0.2", 8080));
  model.refresh();
  append(records, add(make_registration("api", "x", "127.0.0.9", 7000)));
  model.refresh();
  ASSERT_EQ(serial(), 102u);  // the journal holds 101 -> 102 only
  for (const std::uint32_t unknown : {7u, 100u}) {
    SCOPED_TRACE("client serial " + std::to_string(unknown));
    const auto stream = service.transfer(ixfr(79, unknown), kAllowed);
    ASSERT_NE(stream, nullptr);
    const auto messages = drain(*stream);
    expect_headers(messages, 79, LDNS_RR_TYPE_IXFR);
    EXPECT_EQ(parts(messages),
              (std::vector<Part>{part(serial(), everything(records)), part(serial())}));
  }
  EXPECT_EQ(service.stats().ixfr_as_axfr, 2u);
}

// RFC 1995 section 2: an IXFR whose serial is the same as or newer (RFC 1982)
// than the server's gets a single SOA of the current version, as BIND and
// Knot answer (not the whole zone, as an unknown serial would).
TEST_F(TransferServiceTest, IxfrFromANewerSerialIsOneSoa) {
  add(make_registration("web", "a", "127.0.0.2", 8080));
  model.refresh();
  for (const std::uint32_t newer : {serial() + 1, serial() + 1000}) {
    SCOPED_TRACE("client serial " + std::to_string(newer));
    const auto stream = service.transfer(ixfr(80, newer), kAllowed);
    ASSERT_NE(stream, nullptr);
    const auto messages = drain(*stream);
    expect_headers(messages, 80, LDNS_RR_TYPE_IXFR);
    EXPECT_EQ(parts(messages), std::vector<Part>{part(serial())});
  }
}

// ---- UDP ---------------------------------------------------------------------

TEST_F(TransferServiceTest, OverUdpAxfrIsFormErrAndIxfrTheCurrentSoa) {
  add(make_registration("web", "a", "127.0.0.2", 8080));
  model.refresh();
  const std::uint32_t old = serial();
  add(make_registration("web", "b", "127.0.0.3", 8080));
  model.refresh();

  Bytes out(512);
  std::size_t size = service.answer_udp(axfr(90), kAllowed, out);
  ASSERT_GT(size, 0u);
  Pkt pkt = parse(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(size)));
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_FORMERR);
  EXPECT_EQ(ldns_pkt_id(pkt.get()), 90);
  EXPECT_EQ(ldns_pkt_ancount(pkt.get()), 0);

  size = service.answer_udp(ixfr(91, old), kAllowed, out);
  ASSERT_GT(size, 0u);
  pkt = parse(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(size)));
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_NOERROR);
  EXPECT_EQ(ldns_pkt_id(pkt.get()), 91);
  EXPECT_TRUE(ldns_pkt_qr(pkt.get()));
  EXPECT_TRUE(ldns_pkt_aa(pkt.get()));
  ASSERT_EQ(ldns_pkt_ancount(pkt.get()), 1);
  const ldns_rr* soa = ldns_rr_list_rr(ldns_pkt_answer(pkt.get()), 0);
  EXPECT_EQ(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
  EXPECT_EQ(soa_serial(soa), serial());

  size = service.answer_udp(ixfr(92, old), kStranger, out);
  ASSERT_GT(size, 0u);
  pkt = parse(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(size)));
  ASSERT_NE(pkt, nullptr);
  EXPECT_EQ(ldns_pkt_get_rcode(pkt.get()), LDNS_RCODE_REFUSED);
}

// ---- TSIG --------------------------------------------------------------------

class TransferServiceTsigTest : public TransferServiceTest {
 protected:
  TransferService signed_service{model, signed_options()};

  static TransferOptions signed_options() {
    auto options = transfer_options();
    options.key = parse_tsig_key(std::string("hmac-sha256:transfer-key:") + kSecret);
    return options;
  }
  // An AXFR signed by ldns with `secret` under `key_name`; `mac` receives its MAC.
  static Bytes signed_axfr(std::uint16_t id, const char* secret, Rdf* mac = nullptr,
                           const char* key_name = "transfer-key.") {
    Pkt pkt = query_pkt(LDNS_RR_TYPE_AXFR, id);
    EXPECT_EQ(ldns_pkt_tsig_sign(pkt.get(), key_name, secret, 300, "hmac-sha256.", nullptr),
              LDNS_STATUS_OK);
    if (mac) mac->reset(ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(pkt.get()), 3)));
    return to_wire(pkt.get());
  }
};

// ldns's verdict on one response message given the prior MAC (the request's
// for the first message, then the previous message's).
bool verifies(const Bytes& wire, const ldns_rdf* prior, bool first, const char* secret = kSecret) {
  const Pkt pkt = parse(wire);
  return pkt && ldns_pkt_tsig_verify_next(pkt.get(), wire.data(), wire.size(), "transfer-key.",
                                          secret, prior, first ? 0 : 1);
}

TEST_F(TransferServiceTsigTest, UnsignedRequestsAreRefused) {
  add(make_registration("web", "a", "127.0.0.2", 8080));
  model.refresh();
  expect_refusal(signed_service.transfer(axfr(11), kAllowed).get(), 11, LDNS_RCODE_REFUSED);
}

TEST_F(TransferServiceTsigTest, ASignedRequestGetsEveryMessageSignedInAChain) {
  const auto records = add_many(1000);
  model.refresh();
  Rdf request_mac;
  const auto stream = signed_service.transfer(signed_axfr(12, kSecret, &request_mac), kAllowed);
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(stream->rcode(), 0);
  const auto messages = drain(*stream);
  ASSERT_GE(messages.size(), 2u);
  expect_headers(messages, 12, LDNS_RR_TYPE_AXFR);
  EXPECT_FALSE(verifies(messages[0], request_mac.get(), true, kOtherSecret));  // a control
  Rdf prior(ldns_rdf_clone(request_mac.get()));
  for (std::size_t i = 0; i < messages.size(); ++i) {
    SCOPED_TRACE("message " + std::to_string(i));
    EXPECT_LE(messages[i].size(), TransferStream::kMessageTarget + kTsigReserve);
    EXPECT_TRUE(verifies(messages[i], prior.get(), i == 0));
    const Pkt pkt = parse(messages[i]);
    ASSERT_NE(pkt, nullptr);
    ASSERT_NE(ldns_pkt_tsig(pkt.get()), nullptr);
    prior.reset(ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(pkt.get()), 3)));
  }
  EXPECT_EQ(parts(messages),
            (std::vector<Part>{part(serial(), everything(records)), part(serial())}));
}

TEST_F(TransferServiceTsigTest, AWrongSecretOrKeyNameIsNotAuth) {
  add(make_registration("web", "a", "127.0.0.2", 8080));
  model.refresh();
  expect_refusal(signed_service.transfer(signed_axfr(13, kOtherSecret), kAllowed).get(), 13,
                 LDNS_RCODE_NOTAUTH);
  expect_refusal(
      signed_service.transfer(signed_axfr(14, kSecret, nullptr, "other-key."), kAllowed).get(), 14,
      LDNS_RCODE_NOTAUTH);
  // The right signature from a stranger is still refused.
  expect_refusal(signed_service.transfer(signed_axfr(15, kSecret), kStranger).get(), 15,
                 LDNS_RCODE_REFUSED);
}

}  // namespace
}  // namespace xfr
