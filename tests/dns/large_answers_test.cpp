// Answers larger than a message (truncation over UDP and TCP) and SRV answers
// with their targets: the processor with a fake store, decoded with ldns.
#include "tests/dns/query_processor_fixture.h"

namespace dns {
namespace {

using namespace processor_test;  // NOLINT: the fixture and its helpers

class LargeServiceTest : public QueryProcessorTest {
 protected:
  LargeServiceTest() { lookup_.set(testing::make_ipv4_snapshot("big", 2000)); }
};

TEST_F(LargeServiceTest, UdpAnswerIsTruncatedToWholeRecordsAndKeepsQuestionAndOpt) {
  // Without EDNS: 512 bytes.
  Outcome outcome = run(make_query({.name = "big.service.discovery."}));
  EXPECT_TRUE(outcome.truncated);
  EXPECT_LE(outcome.size, 512u);
  Response plain = answer_of(outcome);
  EXPECT_TRUE(plain.tc());
  EXPECT_EQ(plain.question_name(), "big.service.discovery.");
  EXPECT_GT(plain.answer_count(), 20u);
  EXPECT_EQ(12 + 27 + plain.answer_count() * 16, outcome.size) << "whole records only";

  // EDNS asking for 4096: capped at our 1232, OPT still present.
  outcome = run(make_query({.name = "big.service.discovery.", .edns_payload = 4096}));
  EXPECT_TRUE(outcome.truncated);
  EXPECT_LE(outcome.size, 1232u);
  EXPECT_GT(outcome.size, 1232u - 16);
  Response edns = answer_of(outcome);
  EXPECT_TRUE(edns.tc());
  EXPECT_TRUE(edns.has_opt());

  // EDNS asking for less than 512: 512.
  outcome = run(make_query({.name = "big.service.discovery.", .edns_payload = 100}));
  EXPECT_LE(outcome.size, 512u);
  EXPECT_GT(outcome.size, 512u - 16);
}

TEST_F(LargeServiceTest, TwoThousandAddressesFitOverTcp) {
  const Outcome outcome = run(make_query({.name = "big.service.discovery."}), Transport::tcp);
  EXPECT_FALSE(outcome.truncated);
  const Response response = answer_of(outcome);
  EXPECT_FALSE(response.tc());
  EXPECT_EQ(response.answer_count(), 2000u);
  const std::vector<std::string> answer = response.answer();
  EXPECT_EQ(std::set(answer.begin(), answer.end()).size(), 2000u);
}

TEST_F(LargeServiceTest, SrvOverUdpDropsAdditionalsBeforeAnswersWithoutTc) {
  lookup_.set(testing::make_ipv4_snapshot("some", 8));
  const Outcome outcome =
      run(make_query({.name = "some.service.discovery.", .type = LDNS_RR_TYPE_SRV}));
  const Response response = answer_of(outcome);
  EXPECT_FALSE(response.tc()) << "additional data is optional (RFC 2181 section 9)";
  EXPECT_EQ(response.answer_count(), 8u);
  EXPECT_GT(response.additional_count(), 0u);
  EXPECT_LT(response.additional_count(), 8u);
  EXPECT_LE(outcome.size, 512u);
}

TEST_F(LargeServiceTest, TwoThousandSrvOverTcpFillTheMessageWhenTargetsAreCompressed) {
  options_.compress_srv_targets = true;
  rebuild();
  const Outcome outcome =
      run(make_query({.name = "_big._tcp.service.discovery.", .type = LDNS_RR_TYPE_SRV}),
          Transport::tcp);
  const Response response = answer_of(outcome);
  EXPECT_FALSE(response.tc());
  EXPECT_EQ(response.answer_count(), 2000u);
  EXPECT_GT(response.additional_count(), 0u);
  EXPECT_LT(response.additional_count(), 2000u) << "as many additionals as fit";
}

TEST_F(LargeServiceTest, SrvAnswersThatCannotFitOverTcpAreTruncated) {
  // Uncompressed targets (RFC 2782): 2,000 SRV records exceed 65535 bytes.
  const Outcome outcome =
      run(make_query({.name = "big.service.discovery.", .type = LDNS_RR_TYPE_SRV}), Transport::tcp);
  const Response response = answer_of(outcome);
  EXPECT_TRUE(response.tc());
  EXPECT_GT(response.answer_count(), 1000u);
  EXPECT_LT(response.answer_count(), 2000u);
}

TEST_F(QueryProcessorTest, SrvAnswersNameInstanceTargetsWithAddressesInAdditional) {
  const std::vector<std::string> expected_additional = records(
      {"a1.web.instance.discovery. 5 IN A 10.0.0.1", "a2.web.instance.discovery. 5 IN A 10.0.0.2",
       "b6.web.instance.discovery. 5 IN AAAA 2001:db8::6"});
  for (const char* name : {"web.service.discovery.", "_web._tcp.service.discovery."}) {
    const Response response = ask({.name = name, .type = LDNS_RR_TYPE_SRV});
    EXPECT_EQ(response.rcode(), LDNS_RCODE_NOERROR) << name;
    EXPECT_TRUE(response.aa());
    const std::string owner = name;
    EXPECT_EQ(response.answer(),
              records({owner + " 5 IN SRV 1 10 8080 a1.web.instance.discovery.",
                       owner + " 5 IN SRV 1 20 8081 a2.web.instance.discovery.",
                       owner + " 5 IN SRV 1 30 8082 b6.web.instance.discovery."}))
        << name;
    EXPECT_EQ(response.additional(), expected_additional) << name;
  }
  // The RFC 2782 name holds only SRV; ANY gets the SRV RRset.
  EXPECT_EQ(ask({.name = "_web._tcp.service.discovery.", .type = LDNS_RR_TYPE_ANY}).answer_count(),
            3u);
  const Response a_at_srv_name = ask({.name = "_web._tcp.service.discovery."});
  EXPECT_EQ(a_at_srv_name.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(a_at_srv_name.answer().empty());
  EXPECT_EQ(ask({.name = "_nope._tcp.service.discovery.", .type = LDNS_RR_TYPE_SRV}).rcode(),
            LDNS_RCODE_NXDOMAIN);
}

TEST_F(QueryProcessorTest, SrvTargetsAreUncompressedByDefault) {
  ask({.name = "web.service.discovery.", .type = LDNS_RR_TYPE_SRV});
  const Bytes wire = response_bytes();
  const std::string target =
      "\x02"
      "a1\x03"
      "web\x08"
      "instance\x09"
      "discovery";
  EXPECT_NE(std::search(wire.begin(), wire.end(), target.begin(), target.end()), wire.end());
}

TEST_F(QueryProcessorTest, InstanceTargetNamesResolveToThatInstance) {
  EXPECT_EQ(ask({.name = "a2.web.instance.discovery."}).answer(),
            records({"a2.web.instance.discovery. 5 IN A 10.0.0.2"}));
  EXPECT_EQ(ask({.name = "B6.web.instance.discovery.", .type = LDNS_RR_TYPE_AAAA}).answer(),
            records({"b6.web.instance.discovery. 5 IN AAAA 2001:db8::6"}));
  const Response wrong_family =
      ask({.name = "a2.web.instance.discovery.", .type = LDNS_RR_TYPE_AAAA});
  EXPECT_EQ(wrong_family.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(wrong_family.answer().empty());
  EXPECT_EQ(wrong_family.authority(), kNegativeSoa);
}

TEST_F(QueryProcessorTest, TagNamesSelectOnlyInstancesWithTheTag) {
  EXPECT_EQ(ask({.name = "canary.web.service.discovery."}).answer(),
            records({"canary.web.service.discovery. 5 IN A 10.0.0.2"}));
  EXPECT_EQ(ask({.name = "primary.web.service.discovery."}).answer(),
            records({"primary.web.service.discovery. 5 IN A 10.0.0.1",
                     "primary.web.service.discovery. 5 IN A 10.0.0.2"}));
  const Response srv = ask({.name = "canary.web.service.discovery.", .type = LDNS_RR_TYPE_SRV});
  EXPECT_EQ(
      srv.answer(),
      records({"canary.web.service.discovery. 5 IN SRV 1 20 8081 a2.web.instance.discovery."}));
  EXPECT_EQ(srv.additional(), records({"a2.web.instance.discovery. 5 IN A 10.0.0.2"}));
  EXPECT_EQ(ask({.name = "nosuchtag.web.service.discovery."}).rcode(), LDNS_RCODE_NXDOMAIN);
  // Tagged instances are all IPv4: AAAA is NODATA, not NXDOMAIN.
  EXPECT_EQ(ask({.name = "canary.web.service.discovery.", .type = LDNS_RR_TYPE_AAAA}).rcode(),
            LDNS_RCODE_NOERROR);
}

TEST_F(QueryProcessorTest, AnswersRotateOnEveryQueryWhateverTheQueryId) {
  lookup_.set(testing::make_ipv4_snapshot("many", 8));
  std::set<std::string> first_addresses;
  for (int query = 0; query < 8; ++query) {
    // The same ID every time: round-robin is a per-service counter, not the ID.
    run(make_query({.name = "many.service.discovery.", .id = 7}));
    const Bytes wire = response_bytes();
    // The first answer's RDATA: header, question (27 bytes + 4), owner..RDLENGTH (12).
    const std::size_t rdata = 12 + 24 + 4 + 12;
    first_addresses.insert(std::to_string(wire[rdata + 3]));
  }
  EXPECT_EQ(first_addresses.size(), 8u);
}

}  // namespace
}  // namespace dns
