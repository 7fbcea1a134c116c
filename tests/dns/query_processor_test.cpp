// The protocol rules of the front end, checked on the transport-independent
// processor with a fake store. Responses are decoded with ldns: a cross-check of
// the hand-written encoder.
#include "tests/dns/query_processor_fixture.h"

namespace dns {
namespace {

using namespace processor_test;  // NOLINT: the fixture and its helpers

TEST_F(QueryProcessorTest, ServiceAAnswersEveryIpv4InstanceAuthoritatively) {
  const Response response = ask({.name = "web.service.discovery."});
  EXPECT_EQ(response.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(response.aa());
  EXPECT_FALSE(response.ra());
  EXPECT_FALSE(response.tc());
  EXPECT_EQ(response.id(), 0x1234);
  EXPECT_EQ(response.answer(), records({"web.service.discovery. 5 IN A 10.0.0.1",
                                        "web.service.discovery. 5 IN A 10.0.0.2"}));
  EXPECT_TRUE(response.authority().empty());
}

TEST_F(QueryProcessorTest, ServiceAaaaAnswersIpv6InstancesOnly) {
  const Response response = ask({.name = "web.service.discovery.", .type = LDNS_RR_TYPE_AAAA});
  EXPECT_EQ(response.answer(), records({"web.service.discovery. 5 IN AAAA 2001:db8::6"}));
}

TEST_F(QueryProcessorTest, RecursionDesiredIsEchoedAndRecursionAvailableNeverSet) {
  EXPECT_TRUE(ask({.name = "web.service.discovery.", .rd = true}).rd());
  const Response without = ask({.name = "web.service.discovery.", .rd = false});
  EXPECT_FALSE(without.rd());
  EXPECT_FALSE(without.ra());
}

TEST_F(QueryProcessorTest, NamesMatchCaseInsensitivelyAndTheQuestionKeepsTheClientsCase) {
  const Response response = ask({.name = "WeB.SeRvIcE.DiScOvErY."});
  EXPECT_EQ(response.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_EQ(response.question_name(), "WeB.SeRvIcE.DiScOvErY.");
  EXPECT_EQ(response.answer_count(), 2u);
  // The answer owner is a compression pointer to the question (offset 12).
  const Bytes wire = response_bytes();
  const std::size_t answer_start = 12 + (1 + 3 + 1 + 7 + 1 + 9 + 1) + 4;
  ASSERT_GT(wire.size(), answer_start + 2);
  EXPECT_EQ(wire[answer_start], 0xC0);
  EXPECT_EQ(wire[answer_start + 1], 12);
}

TEST_F(QueryProcessorTest, UnknownServiceIsNxdomainWithSoaForNegativeCaching) {
  const Response response = ask({.name = "nope.service.discovery."});
  EXPECT_EQ(response.rcode(), LDNS_RCODE_NXDOMAIN);
  EXPECT_TRUE(response.aa());
  EXPECT_TRUE(response.answer().empty());
  EXPECT_EQ(response.authority(), kNegativeSoa);
}

TEST_F(QueryProcessorTest, NegativeTtlOverrideReplacesTheSoaMinimum) {
  options_.negative_ttl = 2;
  rebuild();
  const Response response = ask({.name = "nope.service.discovery."});
  EXPECT_EQ(
      response.authority(),
      records({"discovery. 2 IN SOA ns1.discovery. hostmaster.discovery. 7 3600 600 86400 30"}));
}

TEST_F(QueryProcessorTest, OtherTypesAtAServiceAreNodata) {
  for (const std::uint16_t type :
       {LDNS_RR_TYPE_TXT, LDNS_RR_TYPE_MX, LDNS_RR_TYPE_SOA, LDNS_RR_TYPE_NS, LDNS_RR_TYPE_CNAME}) {
    const Response response = ask({.name = "web.service.discovery.", .type = type});
    EXPECT_EQ(response.rcode(), LDNS_RCODE_NOERROR) << type;
    EXPECT_TRUE(response.aa());
    EXPECT_TRUE(response.answer().empty()) << type;
    EXPECT_EQ(response.authority(), kNegativeSoa) << type;
  }
  const Response no_v4 = ask({.name = "v6only.service.discovery."});
  EXPECT_EQ(no_v4.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(no_v4.answer().empty());
  EXPECT_EQ(no_v4.authority(), kNegativeSoa);
}

TEST_F(QueryProcessorTest, StructuralNamesAreEmptyNonTerminals) {
  for (const char* name : {"service.discovery.", "_tcp.service.discovery.", "instance.discovery.",
                           "web.instance.discovery."}) {
    const Response response = ask({.name = name});
    EXPECT_EQ(response.rcode(), LDNS_RCODE_NOERROR) << name;
    EXPECT_TRUE(response.aa()) << name;
    EXPECT_TRUE(response.answer().empty()) << name;
    EXPECT_EQ(response.authority(), kNegativeSoa) << name;
  }
  for (const char* name :
       {"nope.instance.discovery.", "x.y.z.service.discovery.", "_web._udp.service.discovery.",
        "other.discovery.", "a1.nope.instance.discovery.", "zz.web.instance.discovery.",
        "x.a1.web.instance.discovery.", "bad_label.service.discovery."}) {
    const Response response = ask({.name = name});
    EXPECT_EQ(response.rcode(), LDNS_RCODE_NXDOMAIN) << name;
    EXPECT_EQ(response.authority(), kNegativeSoa) << name;
  }
}

TEST_F(QueryProcessorTest, OutOfZoneIsRefusedWithoutAuthority) {
  for (const char* name : {"example.com.", "discovery.com.", "."}) {
    const Response response = ask({.name = name});
    EXPECT_EQ(response.rcode(), LDNS_RCODE_REFUSED) << name;
    EXPECT_FALSE(response.aa());
    EXPECT_TRUE(response.answer().empty());
    EXPECT_TRUE(response.authority().empty());
  }
}

TEST_F(QueryProcessorTest, UnsupportedOpcodesAreNotImplemented) {
  for (const std::uint8_t opcode : {1, 2, 4, 5, 6, 15}) {
    const Outcome outcome = run(make_query({.name = "web.service.discovery.", .opcode = opcode}));
    ASSERT_EQ(outcome.kind, Outcome::Kind::respond);
    EXPECT_EQ(outcome.rcode, LDNS_RCODE_NOTIMPL);
    const Bytes wire = response_bytes();
    EXPECT_EQ(wire[3] & 0x0F, LDNS_RCODE_NOTIMPL);
    EXPECT_EQ((wire[2] >> 3) & 0x0F, opcode) << "opcode echoed";
    EXPECT_NE(wire[2] & 0x80, 0) << "QR set";
  }
}

TEST_F(QueryProcessorTest, MalformedQueriesWithAReadableHeaderAreFormerr) {
  const Bytes good = make_query({.name = "web.service.discovery."});
  std::vector<std::pair<std::string, Bytes>> cases;
  // Room for every case up front: GCC 12 at -O3 raises a false -Warray-bounds
  // when the first emplace_back grows an empty vector of pairs.
  cases.reserve(16);
  Bytes no_question = good;
  no_question[5] = 0;
  cases.emplace_back("qdcount 0", no_question);
  Bytes two_questions = good;
  two_questions[5] = 2;
  cases.emplace_back("qdcount 2", two_questions);
  cases.emplace_back("cut in the name", Bytes(good.begin(), good.begin() + 20));
  cases.emplace_back("cut in the type", Bytes(good.begin(), good.end() - 3));
  Bytes pointer_in_question(good.begin(), good.begin() + 12);
  for (std::uint8_t b : {0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01}) pointer_in_question.push_back(b);
  cases.emplace_back("pointer in question", pointer_in_question);
  Bytes label_too_long(good.begin(), good.begin() + 12);
  label_too_long.push_back(64);
  label_too_long.resize(label_too_long.size() + 64, 'a');
  for (std::uint8_t b : {0x00, 0x00, 0x01, 0x00, 0x01}) label_too_long.push_back(b);
  cases.emplace_back("64-byte label", label_too_long);
  Bytes missing_additional = good;
  missing_additional[11] = 1;  // ARCOUNT 1, no record
  cases.emplace_back("arcount beyond the message", missing_additional);

  const Bytes with_opt = make_query({.name = "web.service.discovery.", .edns_payload = 1232});
  Bytes two_opts = with_opt;
  two_opts.insert(two_opts.end(), with_opt.end() - 11, with_opt.end());
  two_opts[11] = 2;
  cases.emplace_back("two OPT records", two_opts);
  Bytes opt_in_answer = with_opt;
  opt_in_answer[7] = 1;   // ANCOUNT 1
  opt_in_answer[11] = 0;  // ARCOUNT 0
  cases.emplace_back("OPT in the answer section", opt_in_answer);
  Bytes opt_not_root = good;
  opt_not_root[11] = 1;
  for (int b : {1, int{'x'}, 0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0}) {
    opt_not_root.push_back(static_cast<std::uint8_t>(b));
  }
  cases.emplace_back("OPT owner not root", opt_not_root);
  cases.emplace_back("option length beyond RDATA",
                     make_query({.name = "web.service.discovery.",
                                 .edns_payload = 1232,
                                 .edns_options = {0, 10, 0, 9, 1, 2}}));

  for (const auto& [what, query] : cases) {
    const Outcome outcome = run(query);
    ASSERT_EQ(outcome.kind, Outcome::Kind::respond) << what;
    EXPECT_EQ(outcome.rcode, LDNS_RCODE_FORMERR) << what;
    EXPECT_TRUE(outcome.malformed) << what << ": TCP closes after it";
    const Bytes wire = response_bytes();
    EXPECT_EQ(wire[3] & 0x0F, LDNS_RCODE_FORMERR) << what;
    EXPECT_EQ(wire[0], 0x12) << what << ": id echoed";
    EXPECT_EQ(wire[1], 0x34) << what;
  }
  // A readable query of a type that is no question is FORMERR too, but not garbage.
  const Outcome opt_question = run(make_query({.name = "discovery.", .type = 41}));
  EXPECT_EQ(opt_question.rcode, LDNS_RCODE_FORMERR);
  EXPECT_FALSE(opt_question.malformed);
  EXPECT_FALSE(run(good).malformed);
}

TEST_F(QueryProcessorTest, ShortPacketsAndResponsesAreDropped) {
  const Bytes good = make_query({.name = "web.service.discovery."});
  for (std::size_t size = 0; size < 12; ++size) {
    const Outcome outcome =
        run(Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(size)));
    EXPECT_EQ(outcome.kind, Outcome::Kind::drop) << size;
    EXPECT_TRUE(outcome.malformed) << size << ": not even a header";
  }
  Bytes response = good;
  response[2] |= 0x80;  // QR=1
  EXPECT_EQ(run(response).kind, Outcome::Kind::drop);
  EXPECT_FALSE(run(response).malformed) << "a response is DNS, just not for us";
}

TEST_F(QueryProcessorTest, ChaosIdentityNamesAnswerTheConfiguredStrings) {
  options_.version_bind = "discoveryd 0.1.0";
  options_.id_server = "node-7";
  rebuild();
  const auto chaos = [this](const char* name) {
    return ask({.name = name, .type = LDNS_RR_TYPE_TXT, .rrclass = LDNS_RR_CLASS_CH});
  };
  Response version = chaos("VERSION.bind.");
  EXPECT_EQ(version.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_EQ(version.answer(), records({"version.bind. 0 CH TXT \"discoveryd 0.1.0\""}));
  EXPECT_EQ(chaos("version.server.").answer(),
            records({"version.server. 0 CH TXT \"discoveryd 0.1.0\""}));
  EXPECT_EQ(chaos("id.server.").answer(), records({"id.server. 0 CH TXT \"node-7\""}));
  EXPECT_EQ(chaos("hostname.bind.").answer(), records({"hostname.bind. 0 CH TXT \"node-7\""}));
  EXPECT_EQ(chaos("other.bind.").rcode(), LDNS_RCODE_REFUSED);
}

TEST_F(QueryProcessorTest, ChaosNamesAreRefusedWhenNotConfigured) {
  for (const char* name : {"version.bind.", "id.server."}) {
    const Response response =
        ask({.name = name, .type = LDNS_RR_TYPE_TXT, .rrclass = LDNS_RR_CLASS_CH});
    EXPECT_EQ(response.rcode(), LDNS_RCODE_REFUSED) << name;
    EXPECT_TRUE(response.answer().empty());
  }
}

TEST_F(QueryProcessorTest, OtherClassesAndTransfersAreRefused) {
  EXPECT_EQ(ask({.name = "web.service.discovery.", .rrclass = LDNS_RR_CLASS_HS}).rcode(),
            LDNS_RCODE_REFUSED);
  EXPECT_EQ(ask({.name = "discovery.", .type = LDNS_RR_TYPE_AXFR}).rcode(), LDNS_RCODE_REFUSED);
  EXPECT_EQ(ask({.name = "discovery.", .type = LDNS_RR_TYPE_IXFR}).rcode(), LDNS_RCODE_REFUSED);
  EXPECT_EQ(ask({.name = "discovery.", .type = LDNS_RR_TYPE_OPT}).rcode(), LDNS_RCODE_FORMERR);
}

TEST_F(QueryProcessorTest, AnyAtAServiceIsMinimalAddressesOnly) {
  const Response response = ask({.name = "web.service.discovery.", .type = LDNS_RR_TYPE_ANY});
  EXPECT_EQ(response.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_EQ(response.answer(), records({"web.service.discovery. 5 IN A 10.0.0.1",
                                        "web.service.discovery. 5 IN A 10.0.0.2",
                                        "web.service.discovery. 5 IN AAAA 2001:db8::6"}));
  EXPECT_EQ(response.additional_count(), 0u);
}

TEST_F(QueryProcessorTest, AnyAtAStaticNameReturnsOneRRset) {
  const Response response = ask({.name = "discovery.", .type = LDNS_RR_TYPE_ANY});
  EXPECT_EQ(response.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_EQ(response.answer(), records({"discovery. 300 IN NS ns1.discovery."}));
}

TEST_F(QueryProcessorTest, EdnsQueriesGetAnOptWithOurPayloadSize) {
  const Response plain = ask({.name = "web.service.discovery."});
  EXPECT_FALSE(plain.has_opt());
  const Response edns =
      ask({.name = "web.service.discovery.", .edns_payload = 4096, .dnssec_ok = true});
  EXPECT_TRUE(edns.has_opt());
  EXPECT_EQ(edns.opt_payload(), 1232);
  EXPECT_TRUE(edns.dnssec_ok()) << "DO is copied (RFC 3225)";
  EXPECT_EQ(edns.answer_count(), 2u);
  // A negative answer keeps its OPT too.
  EXPECT_TRUE(ask({.name = "nope.service.discovery.", .edns_payload = 1232}).has_opt());
}

TEST_F(QueryProcessorTest, EdnsVersionAboveZeroIsBadvers) {
  const Outcome outcome =
      run(make_query({.name = "web.service.discovery.", .edns_payload = 1232, .edns_version = 1}));
  EXPECT_EQ(outcome.rcode, 16);
  const Response response = answer_of(outcome);
  EXPECT_TRUE(response.has_opt());
  EXPECT_EQ(response.extended_rcode(), 1);
  EXPECT_EQ(response.rcode(), 0) << "the low 4 bits of BADVERS";
  EXPECT_TRUE(response.answer().empty());
}

TEST_F(QueryProcessorTest, UnknownEdnsOptionsAreIgnored) {
  const Response response = ask({.name = "web.service.discovery.",
                                 .edns_payload = 1232,
                                 .edns_options = {0xFD, 0xE9, 0, 3, 'a', 'b', 'c', 0, 10, 0, 0}});
  EXPECT_EQ(response.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_EQ(response.answer_count(), 2u);
}

TEST_F(QueryProcessorTest, UncachedServicesAskForALookupThenUseTheFetchedSnapshot) {
  lookup_.cached = false;
  Bytes query = make_query({.name = "web.service.discovery.", .id = 0x4242});
  const Outcome first = run(query);
  ASSERT_EQ(first.kind, Outcome::Kind::needs_lookup);
  ASSERT_TRUE(first.pending);
  EXPECT_EQ(first.pending->service(), "web");
  // The pending query owns what it needs: the receive buffer may be reused.
  std::fill(query.begin(), query.end(), std::uint8_t{0xEE});

  buffer_.assign(processor_->buffer_size(Transport::udp), 0);
  last_ = processor_->resume(*first.pending, Transport::udp, buffer_, lookup_.result_for("web"));
  const Response response = answer_of(last_);
  EXPECT_EQ(response.id(), 0x4242);
  EXPECT_EQ(response.answer_count(), 2u);

  // A fetched empty snapshot: the service does not exist.
  const Outcome gone = run(make_query({.name = "gone.service.discovery."}));
  ASSERT_EQ(gone.kind, Outcome::Kind::needs_lookup);
  buffer_.assign(processor_->buffer_size(Transport::udp), 0);
  last_ = processor_->resume(*gone.pending, Transport::udp, buffer_, lookup_.result_for("gone"));
  EXPECT_EQ(answer_of(last_).rcode(), LDNS_RCODE_NXDOMAIN);
}

TEST_F(QueryProcessorTest, FailedFetchIsServfail) {
  lookup_.cached = false;
  const Outcome first = run(make_query({.name = "web.service.discovery."}));
  ASSERT_EQ(first.kind, Outcome::Kind::needs_lookup);
  lookup_.fail_fetches = true;
  buffer_.assign(processor_->buffer_size(Transport::udp), 0);
  last_ = processor_->resume(*first.pending, Transport::udp, buffer_, lookup_.result_for("web"));
  EXPECT_EQ(last_.rcode, LDNS_RCODE_SERVFAIL);
  const Response response = answer_of(last_);
  EXPECT_EQ(response.rcode(), LDNS_RCODE_SERVFAIL);
  EXPECT_FALSE(response.aa());
}

TEST_F(QueryProcessorTest, NamesThatCannotBeServicesNeverReachTheStore) {
  lookup_.cached = false;
  EXPECT_EQ(run(make_query({.name = "under_score.service.discovery."})).kind,
            Outcome::Kind::respond);
  EXPECT_EQ(run(make_query({.name = "discovery."})).kind, Outcome::Kind::respond);
  EXPECT_TRUE(lookup_.cached_queries().empty());
}

TEST_F(QueryProcessorTest, StaticRecordsAnswerFromTheZoneFile) {
  Response soa = ask({.name = "discovery.", .type = LDNS_RR_TYPE_SOA});
  EXPECT_TRUE(soa.aa());
  EXPECT_EQ(
      soa.answer(),
      records({"discovery. 60 IN SOA ns1.discovery. hostmaster.discovery. 7 3600 600 86400 30"}));

  Response ns = ask({.name = "discovery.", .type = LDNS_RR_TYPE_NS});
  EXPECT_EQ(ns.answer(), records({"discovery. 300 IN NS ns1.discovery."}));
  EXPECT_EQ(ns.additional(),
            records({"ns1.discovery. 300 IN A 127.0.0.1", "ns1.discovery. 300 IN AAAA ::1"}));

  Response mx = ask({.name = "discovery.", .type = LDNS_RR_TYPE_MX});
  EXPECT_EQ(mx.answer(), records({"discovery. 300 IN MX 10 mail.discovery."}));
  EXPECT_EQ(mx.additional(), records({"mail.discovery. 300 IN A 192.0.2.25"}));

  EXPECT_EQ(ask({.name = "WWW.discovery."}).answer(),
            records({"www.discovery. 120 IN A 192.0.2.80", "www.discovery. 120 IN A 192.0.2.81"}));
  EXPECT_EQ(ask({.name = "www.discovery.", .type = LDNS_RR_TYPE_TXT}).answer(),
            records({"www.discovery. 120 IN TXT \"hello world\""}));
  EXPECT_EQ(ask({.name = "alias.discovery."}).answer(),
            records({"alias.discovery. 300 IN CNAME www.discovery."}));
}

TEST_F(QueryProcessorTest, StaticNegativeAnswers) {
  const Response nodata = ask({.name = "www.discovery.", .type = LDNS_RR_TYPE_AAAA});
  EXPECT_EQ(nodata.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(nodata.answer().empty());
  EXPECT_EQ(nodata.authority(), kNegativeSoa);

  const Response ent = ask({.name = "ent.discovery."});
  EXPECT_EQ(ent.rcode(), LDNS_RCODE_NOERROR);
  EXPECT_EQ(ent.authority(), kNegativeSoa);

  for (const char* name : {"nope.discovery.", "x.www.discovery.", "x.deep.ent.discovery."}) {
    const Response nx = ask({.name = name});
    EXPECT_EQ(nx.rcode(), LDNS_RCODE_NXDOMAIN) << name;
    EXPECT_TRUE(nx.aa());
    EXPECT_EQ(nx.authority(), kNegativeSoa) << name;
  }
}

}  // namespace
}  // namespace dns
