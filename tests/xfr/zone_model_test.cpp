// The zone a transfer carries. ZoneContentTest: a service snapshot's records
// (service_records) checked against records that ldns builds from presentation
// text, an independent encoder. ZoneModelTest: the model over a real SQLite
// registry, refreshed by hand (no thread, no timing): the published serial,
// the journal of differences and its limit, the serial listeners.
#include "xfr/zone_model.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "dns/ldns.h"
#include "store/sqlite/sqlite_store.h"
#include "tests/store/store_test_support.h"
#include "xfr/zone_content.h"

namespace xfr {

// Failure messages show records in presentation form (found by ADL).
static std::string text_of(const Record& record) {
  ldns_rr* rr = ldns_rr_new();
  ldns_rr_set_owner(rr, ldns_dname_new_frm_data(static_cast<std::uint16_t>(record.owner.size()),
                                                record.owner.data()));
  ldns_rr_set_type(rr, static_cast<ldns_rr_type>(record.type));
  ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
  ldns_rr_set_ttl(rr, record.ttl);
  std::vector<std::uint8_t> wire = {static_cast<std::uint8_t>(record.rdata.size() >> 8),
                                    static_cast<std::uint8_t>(record.rdata.size())};
  wire.insert(wire.end(), record.rdata.begin(), record.rdata.end());
  std::size_t position = 0;
  std::string text = "(unreadable record)";
  if (ldns_wire2rdf(rr, wire.data(), wire.size(), &position) == LDNS_STATUS_OK) {
    char* printed = ldns_rr2str(rr);
    text = printed ? printed : text;
    std::free(printed);
    while (!text.empty() && text.back() == '\n') text.pop_back();
  }
  ldns_rr_free(rr);
  return text;
}

[[maybe_unused]] static void PrintTo(const Record& record, std::ostream* out) {
  *out << text_of(record);
}

namespace {

using store_test::kNow;
using store_test::make_registration;

// A directory of its own under $TMPDIR, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "zone_model_XXXXXX").string();
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

// A record from presentation text, encoded by ldns (names uncompressed).
Record record(const std::string& text) {
  ldns_rr* rr = nullptr;
  const ldns_status status = ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr);
  EXPECT_EQ(status, LDNS_STATUS_OK) << text;
  if (status != LDNS_STATUS_OK) return {};
  Record out;
  const ldns_rdf* owner = ldns_rr_owner(rr);
  out.owner.assign(reinterpret_cast<const char*>(ldns_rdf_data(owner)), ldns_rdf_size(owner));
  out.type = static_cast<std::uint16_t>(ldns_rr_get_type(rr));
  out.ttl = ldns_rr_ttl(rr);
  ldns_buffer* buffer = ldns_buffer_new(512);
  EXPECT_EQ(ldns_rr_rdata2buffer_wire(buffer, rr), LDNS_STATUS_OK) << text;
  out.rdata.assign(reinterpret_cast<const char*>(ldns_buffer_begin(buffer)),
                   ldns_buffer_position(buffer));
  ldns_buffer_free(buffer);
  ldns_rr_free(rr);
  return out;
}

// The records of `texts`, sorted as service_records sorts them.
std::vector<Record> records(const std::vector<std::string>& texts) {
  std::vector<Record> out;
  for (const auto& text : texts) out.push_back(record(text));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Record> sorted(std::vector<Record> records) {
  std::sort(records.begin(), records.end());
  return records;
}

ZoneSettings settings(std::uint32_t ttl = 5, std::uint16_t priority = 1) {
  return {*dns::Name::from_text("discovery."), ttl, priority};
}

store::Instance instance(store::Registration registration) {
  store::Instance out;
  out.registration = std::move(registration);
  return out;
}

// ---- service_records -------------------------------------------------------

TEST(ZoneContentTest, ServiceRecordsOfTwoInstancesWithTagsAndWeights) {
  auto a = make_registration("web", "a", "127.0.0.5", 8080);
  a.weight = 3;
  a.tags = {"blue", "canary"};
  auto b = make_registration("web", "b", "::1", 9090);
  b.weight = 7;
  b.tags = {"blue"};
  store::ServiceSnapshot snapshot;
  snapshot.service = "web";
  snapshot.instances = {instance(a), instance(b)};

  const auto actual = service_records(snapshot, settings(7, 2));
  EXPECT_TRUE(std::is_sorted(actual.begin(), actual.end()));
  const std::string srv_a = " 7 IN SRV 2 3 8080 a.web.instance.discovery.";
  const std::string srv_b = " 7 IN SRV 2 7 9090 b.web.instance.discovery.";
  EXPECT_EQ(actual, records({
                        "web.service.discovery. 7 IN A 127.0.0.5",
                        "web.service.discovery. 7 IN AAAA ::1",
                        "web.service.discovery." + srv_a,
                        "web.service.discovery." + srv_b,
                        "_web._tcp.service.discovery." + srv_a,
                        "_web._tcp.service.discovery." + srv_b,
                        "a.web.instance.discovery. 7 IN A 127.0.0.5",
                        "b.web.instance.discovery. 7 IN AAAA ::1",
                        "blue.web.service.discovery. 7 IN A 127.0.0.5",
                        "blue.web.service.discovery." + srv_a,
                        "blue.web.service.discovery. 7 IN AAAA ::1",
                        "blue.web.service.discovery." + srv_b,
                        "canary.web.service.discovery. 7 IN A 127.0.0.5",
                        "canary.web.service.discovery." + srv_a,
                    }));
}

TEST(ZoneContentTest, SrvRdataIsPriorityWeightPortAndAnUncompressedTarget) {
  auto a = make_registration("web", "a", "127.0.0.5", 0x1f90);
  a.weight = 0x0102;
  store::ServiceSnapshot snapshot;
  snapshot.service = "web";
  snapshot.instances = {instance(a)};
  const auto actual = service_records(snapshot, settings(5, 9));
  const auto srv = std::find_if(actual.begin(), actual.end(),
                                [](const Record& r) { return r.type == dns::rrtype::srv; });
  ASSERT_NE(srv, actual.end());
  const std::string target(
      "\x01"
      "a\x03web\x08instance\x09"
      "discovery\x00",
      26);
  EXPECT_EQ(srv->rdata, std::string("\x00\x09\x01\x02\x1f\x90", 6) + target);
}

TEST(ZoneContentTest, EmptySnapshotHasNoRecordsAndSharedAddressesOneA) {
  store::ServiceSnapshot empty;
  empty.service = "web";
  EXPECT_TRUE(service_records(empty, settings()).empty());

  store::ServiceSnapshot shared;
  shared.service = "web";
  shared.instances = {instance(make_registration("web", "a", "127.0.0.5", 1)),
                      instance(make_registration("web", "b", "127.0.0.5", 2))};
  const auto actual = service_records(shared, settings());
  EXPECT_EQ(
      std::count(actual.begin(), actual.end(), record("web.service.discovery. 5 IN A 127.0.0.5")),
      1);
  EXPECT_EQ(actual.size(), 7u);  // one A, two SRV, two _tcp SRV, two instance A
}

constexpr const char* kZoneText =
    "$TTL 3600\n"
    "@ IN SOA ns1 hostmaster 100 3600 600 86400 30\n"
    "@ IN NS ns1\n"
    "ns1 IN A 192.0.2.1\n";

TEST(ZoneContentTest, StaticRecordsLeaveTheSoaOutAndSoaRecordHasTheSerial) {
  const auto zone = dns::Zone::parse(kZoneText, "discovery.");
  EXPECT_EQ(sorted(static_records(*zone)), records({"discovery. 3600 IN NS ns1.discovery.",
                                                    "ns1.discovery. 3600 IN A 192.0.2.1"}));
  EXPECT_EQ(soa_record(*zone, 4242),
            record("discovery. 3600 IN SOA ns1.discovery. hostmaster.discovery. "
                   "4242 3600 600 86400 30"));
}

// ---- ZoneModel -------------------------------------------------------------

class ZoneModelTest : public ::testing::Test {
 protected:
  ScratchDir dir;
  store::SqliteStore db{
      store::StoreOptions{.path = dir.file("registry.db"), .synchronous_full = false}};
  std::shared_ptr<const dns::Zone> zone = dns::Zone::parse(kZoneText, "discovery.");

  static ZoneModelOptions options(std::size_t journal_records = 1'000'000) {
    ZoneModelOptions out;
    out.settings = settings();
    out.journal_records = journal_records;
    return out;
  }
  void apply(store::Mutation mutation) {
    const auto result = db.apply(std::span(&mutation, 1), kNow)[0];
    ASSERT_TRUE(result.changed()) << store::to_string(result.outcome) << " " << result.error;
  }
  void upsert(store::Registration registration) { apply(store::Upsert{std::move(registration)}); }
  void deregister(const std::string& service, const std::string& id) {
    apply(store::Deregister{service, id});
  }
};

// The records one untagged IPv4 instance of `service` adds (TTL 5, priority 1).
std::vector<Record> instance_records(const std::string& service, const std::string& id,
                                     const std::string& address, int port, int weight = 1) {
  const std::string owner = service + ".service.discovery. 5 IN ";
  const std::string target = id + "." + service + ".instance.discovery.";
  const std::string srv =
      "SRV 1 " + std::to_string(weight) + " " + std::to_string(port) + " " + target;
  return records({owner + "A " + address, owner + srv,
                  "_" + service + "._tcp.service.discovery. 5 IN " + srv,
                  target + " 5 IN A " + address});
}

TEST_F(ZoneModelTest, PublishesTheFileSerialPlusTheChangeSequence) {
  upsert(make_registration("web", "a", "127.0.0.2", 8080));
  upsert(make_registration("web", "b", "127.0.0.3", 8081));
  ZoneModel model(db, zone, options());
  EXPECT_EQ(zone->serial(), 100u);  // the file's until the model publishes
  model.refresh();
  const auto version = model.current();
  ASSERT_NE(version, nullptr);
  ASSERT_EQ(db.last_sequence(), 2u);
  EXPECT_EQ(version->sequence, 2u);
  EXPECT_EQ(version->serial, 102u);
  EXPECT_EQ(model.serial_of(db.last_sequence()), 102u);
  EXPECT_EQ(zone->serial(), 102u);
  EXPECT_EQ(*version->static_records, records({"discovery. 3600 IN NS ns1.discovery.",
                                               "ns1.discovery. 3600 IN A 192.0.2.1"}));
  ASSERT_EQ(version->services.size(), 1u);
  ASSERT_TRUE(version->services.contains("web"));
  auto expected = instance_records("web", "a", "127.0.0.2", 8080);
  const auto b = instance_records("web", "b", "127.0.0.3", 8081);
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(*version->services.at("web"), sorted(expected));
  EXPECT_EQ(version->record_count, 2u + 8u);
}

TEST_F(ZoneModelTest, JournalsTheRecordsOfARegistrationAndOfADeregistration) {
  upsert(make_registration("web", "a", "127.0.0.2", 8080));
  ZoneModel model(db, zone, options());
  model.refresh();
  const std::uint32_t s0 = model.current()->serial;
  EXPECT_EQ(s0, 101u);

  auto b = make_registration("web", "b", "127.0.0.3", 8081);
  b.weight = 4;
  b.tags = {"blue"};
  upsert(b);
  model.refresh();
  const std::uint32_t s1 = model.current()->serial;
  EXPECT_EQ(s1, 100u + db.last_sequence());
  EXPECT_EQ(s1, s0 + 1);
  auto b_records = instance_records("web", "b", "127.0.0.3", 8081, 4);
  b_records.push_back(record("blue.web.service.discovery. 5 IN A 127.0.0.3"));
  b_records.push_back(
      record("blue.web.service.discovery. 5 IN SRV 1 4 8081 b.web.instance.discovery."));
  b_records = sorted(b_records);

  const auto added = model.steps_since(s0);
  ASSERT_TRUE(added.has_value());
  ASSERT_EQ(added->size(), 1u);
  EXPECT_EQ((*added)[0]->from, s0);
  EXPECT_EQ((*added)[0]->to, s1);
  EXPECT_TRUE((*added)[0]->removed.empty());
  EXPECT_EQ(sorted((*added)[0]->added), b_records);

  deregister("web", "b");
  model.refresh();
  const std::uint32_t s2 = model.current()->serial;
  EXPECT_EQ(s2, s1 + 1);
  std::shared_ptr<const ZoneVersion> version;
  const auto both = model.steps_since(s0, &version);
  ASSERT_TRUE(both.has_value());
  ASSERT_EQ(both->size(), 2u);
  EXPECT_EQ((*both)[0]->from, s0);
  EXPECT_EQ((*both)[0]->to, s1);
  EXPECT_EQ((*both)[1]->from, s1);
  EXPECT_EQ((*both)[1]->to, s2);
  EXPECT_EQ(sorted((*both)[1]->removed), b_records);
  EXPECT_TRUE((*both)[1]->added.empty());
  EXPECT_EQ(version, model.current());
  EXPECT_EQ(version->serial, s2);

  ASSERT_TRUE(model.steps_since(s1).has_value());
  EXPECT_EQ(model.steps_since(s1)->size(), 1u);
  const auto none = model.steps_since(s2);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(model.steps_since(s0 - 50).has_value());
  // Newer than ours (RFC 1982): nothing to send, as for the current serial.
  ASSERT_TRUE(model.steps_since(s2 + 1).has_value());
  EXPECT_TRUE(model.steps_since(s2 + 1)->empty());
}

TEST_F(ZoneModelTest, AServiceThatLosesItsLastInstanceGoesWithAllItsRecords) {
  upsert(make_registration("web", "a", "127.0.0.2", 8080));
  upsert(make_registration("api", "x", "127.0.0.9", 7000));
  ZoneModel model(db, zone, options());
  model.refresh();
  const std::uint32_t before = model.current()->serial;
  deregister("api", "x");
  model.refresh();
  EXPECT_FALSE(model.current()->services.contains("api"));
  EXPECT_TRUE(model.current()->services.contains("web"));
  EXPECT_EQ(model.current()->record_count, 2u + 4u);
  const auto steps = model.steps_since(before);
  ASSERT_TRUE(steps.has_value());
  ASSERT_EQ(steps->size(), 1u);
  EXPECT_EQ(sorted((*steps)[0]->removed), instance_records("api", "x", "127.0.0.9", 7000));
  EXPECT_TRUE((*steps)[0]->added.empty());
}

TEST_F(ZoneModelTest, JournalLimitDropsTheOldestSteps) {
  ZoneModel model(db, zone, options(10));  // each instance below is a step of 4 records
  model.refresh();
  const std::uint32_t s0 = model.current()->serial;
  EXPECT_EQ(s0, 100u);  // an empty registry: the file's serial
  upsert(make_registration("web", "a", "127.0.0.2", 8080));
  model.refresh();
  const std::uint32_t s1 = model.current()->serial;
  upsert(make_registration("web", "b", "127.0.0.3", 8080));
  model.refresh();
  ASSERT_TRUE(model.steps_since(s0).has_value());  // 8 records: still within the limit
  EXPECT_EQ(model.steps_since(s0)->size(), 2u);

  upsert(make_registration("web", "c", "127.0.0.4", 8080));
  model.refresh();
  EXPECT_FALSE(model.steps_since(s0).has_value());  // 12 records: the first step went
  const auto kept = model.steps_since(s1);
  ASSERT_TRUE(kept.has_value());
  ASSERT_EQ(kept->size(), 2u);
  EXPECT_EQ(kept->back()->to, model.current()->serial);
  EXPECT_EQ(model.stats().journal_steps, 2u);
  EXPECT_EQ(model.stats().journal_records, 8u);
}

TEST_F(ZoneModelTest, SerialListenersHearEachNewSerialOnce) {
  upsert(make_registration("web", "a", "127.0.0.2", 8080));
  ZoneModel model(db, zone, options());
  std::vector<std::uint32_t> heard;
  model.on_serial([&](std::uint32_t serial) { heard.push_back(serial); });
  model.refresh();
  EXPECT_EQ(heard, (std::vector<std::uint32_t>{101}));
  model.refresh();  // nothing new
  EXPECT_EQ(heard, (std::vector<std::uint32_t>{101}));

  upsert(make_registration("web", "b", "127.0.0.3", 8081));
  model.refresh();
  EXPECT_EQ(heard, (std::vector<std::uint32_t>{101, 102}));
  model.refresh();
  model.refresh();
  EXPECT_EQ(heard, (std::vector<std::uint32_t>{101, 102}));

  deregister("web", "a");
  model.refresh();
  EXPECT_EQ(heard, (std::vector<std::uint32_t>{101, 102, 103}));
}

}  // namespace
}  // namespace xfr
