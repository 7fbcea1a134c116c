// TSIG tests. The key line parser on its own; verify_request against requests
// signed by ldns (an independent implementation); TsigSigner's messages checked
// with ldns_pkt_tsig_verify_next in order; and kdig and dig as real clients of a
// one-connection fake AXFR server on 127.0.0.1 that verifies and signs with
// the code under test.
#include "xfr/tsig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dns/ldns.h"

namespace xfr {
namespace {

using Bytes = std::vector<std::uint8_t>;

// 32 random bytes; kSecretPart is a piece no error message may contain either.
constexpr const char* kSecret = "C5xJYuWXiRG9xmwGtUCTPrVedhdIZAw0k7FI3zJAjH4=";
constexpr const char* kSecretPart = "RG9xmwGtUC";
constexpr const char* kOtherSecret = "b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXM=";
const std::string kLine = std::string("hmac-sha256:transfer-key:") + kSecret;

struct PktFree {
  void operator()(ldns_pkt* pkt) const { ldns_pkt_free(pkt); }
};
struct RdfFree {
  void operator()(ldns_rdf* rdf) const { ldns_rdf_deep_free(rdf); }
};
using Pkt = std::unique_ptr<ldns_pkt, PktFree>;
using Rdf = std::unique_ptr<ldns_rdf, RdfFree>;

std::string error_of(const std::string& line) {
  try {
    parse_tsig_key(line);
  } catch (const TsigError& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- key line -----------------------------------------------------------

TEST(TsigKeyTest, ParsesAndNormalisesTheLine) {
  const auto key = parse_tsig_key("  HMAC-SHA256:Transfer-Key:" + std::string(kSecret) + "\n");
  EXPECT_EQ(key.algorithm, "hmac-sha256");
  EXPECT_EQ(key.name, "transfer-key.");
  ASSERT_EQ(key.secret.size(), 32u);
  EXPECT_EQ(static_cast<unsigned char>(key.secret[0]), 0x0bu);  // base64 "C5x..." decoded
  EXPECT_EQ(static_cast<unsigned char>(key.secret[31]), 0x7eu);
  EXPECT_EQ(parse_tsig_key("hmac-sha256:xfr.example.:" + std::string(kSecret)).name,
            "xfr.example.");
}

TEST(TsigKeyTest, AcceptsSha1AndSha512) {
  EXPECT_EQ(parse_tsig_key("hmac-sha1:k:" + std::string(kSecret)).algorithm, "hmac-sha1");
  EXPECT_EQ(parse_tsig_key("hmac-sha512:k:" + std::string(kSecret)).algorithm, "hmac-sha512");
}

TEST(TsigKeyTest, RejectsBadLinesWithoutQuotingTheSecret) {
  const std::string s = kSecret;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"hmac-md5:transfer-key:" + s, "unsupported algorithm \"hmac-md5\""},
      {"sha256:transfer-key:" + s, "unsupported algorithm"},
      {"hmac-sha256:transfer-key:" + s.substr(0, 43), "not valid base64"},
      {"hmac-sha256:transfer-key:" + s + "!", "not valid base64"},
      {"hmac-sha256:transfer-key:", "empty secret"},
      {"hmac-sha256:transfer-key:-", "empty secret"},
      {"hmac-sha256::" + s, "empty key name"},
      {"transfer-key:" + s, "missing parts"},
      {s, "missing parts"},
      {"", "empty"},
      {"hmac-sha256:a:b:" + s, "too many"},
      {"hmac-sha256:transfer key:" + s, "whitespace"},
      {kLine + "\n" + kLine, "several lines"},
      {"hmac-sha256:" + std::string(250, 'a') + ":" + s, "not a valid domain name"},
      {"hmac-sha256:" + std::string(60, 'a') + "." + std::string(60, 'a') + "." +
           std::string(60, 'a') + "." + std::string(60, 'a') + ":" + s,
       "too long"},
  };
  for (const auto& [line, expected] : cases) {
    const auto message = error_of(line);
    EXPECT_NE(message.find(expected), std::string::npos) << line << " -> " << message;
    EXPECT_EQ(message.find(kSecretPart), std::string::npos) << message;
  }
}

TEST(TsigKeyTest, ReadsAKeyFileAndNamesItInErrors) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("tsig_test_" + std::to_string(::getpid()) + "_" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(dir);
  const auto good = (dir / "good.key").string();
  const auto bad = (dir / "bad.key").string();
  std::ofstream(good) << kLine << "\n";
  std::ofstream(bad) << "hmac-sha999:transfer-key:" << kSecret << "\n";
  EXPECT_EQ(read_tsig_key_file(good).name, "transfer-key.");
  for (const auto& path : {bad, (dir / "missing.key").string()}) {
    try {
      read_tsig_key_file(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const TsigError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_EQ(message.find(kSecretPart), std::string::npos) << message;
    }
  }
  std::filesystem::remove_all(dir);
}

// ---- helpers built on ldns ---------------------------------------------------

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

Pkt make_query(std::uint16_t id) {
  Pkt pkt(ldns_pkt_query_new(ldns_dname_new_frm_str("example."), LDNS_RR_TYPE_AXFR,
                             LDNS_RR_CLASS_IN, 0));
  ldns_pkt_set_id(pkt.get(), id);
  return pkt;
}

struct SignedQuery {
  Bytes wire;
  std::string mac;  // the MAC bytes ldns put in
};

SignedQuery ldns_signed_query(const char* name = "transfer-key.",
                              const char* algorithm = "hmac-sha256.", const char* secret = kSecret,
                              std::uint16_t fudge = 300) {
  auto pkt = make_query(0x1234);
  EXPECT_EQ(ldns_pkt_tsig_sign(pkt.get(), name, secret, fudge, algorithm, nullptr), LDNS_STATUS_OK);
  const ldns_rdf* mac = ldns_rr_rdf(ldns_pkt_tsig(pkt.get()), 3);
  return {to_wire(pkt.get()), std::string(reinterpret_cast<const char*>(ldns_rdf_data(mac)) + 2,
                                          ldns_rdf_size(mac) - 2)};
}

TsigVerdict verdict(const Bytes& wire, std::time_t now = std::time(nullptr)) {
  return verify_request(wire, parse_tsig_key(kLine), now).verdict;
}

// ---- verify_request ------------------------------------------------------------

TEST(TsigVerifyTest, AcceptsARequestSignedByLdns) {
  const auto query = ldns_signed_query();
  const auto check = verify_request(query.wire, parse_tsig_key(kLine), std::time(nullptr));
  EXPECT_EQ(check.verdict, TsigVerdict::ok);
  EXPECT_EQ(check.request_mac, query.mac);
  EXPECT_EQ(check.request_mac.size(), 32u);
  // Names compare case-insensitively.
  EXPECT_EQ(verdict(ldns_signed_query("Transfer-KEY.").wire), TsigVerdict::ok);
}

TEST(TsigVerifyTest, TamperedRequestsFail) {
  const auto wire = ldns_signed_query().wire;
  auto name = wire;
  name[13] ^= 0x01;  // "example" -> "dxample"
  EXPECT_EQ(verdict(name), TsigVerdict::bad_signature);
  auto flags = wire;
  flags[2] ^= 0x01;  // RD
  EXPECT_EQ(verdict(flags), TsigVerdict::bad_signature);
  auto mac = wire;
  mac[mac.size() - 7] ^= 0x80;  // last MAC byte (then ID, error, other length)
  EXPECT_EQ(verdict(mac), TsigVerdict::bad_signature);
  EXPECT_EQ(verdict(ldns_signed_query("transfer-key.", "hmac-sha256.", kOtherSecret).wire),
            TsigVerdict::bad_signature);
}

TEST(TsigVerifyTest, TheOriginalIdIsDigestedNotTheMessageId) {
  auto wire = ldns_signed_query().wire;
  wire[0] = 0x99;  // as if a forwarder had changed the ID
  EXPECT_EQ(verdict(wire), TsigVerdict::ok);
}

TEST(TsigVerifyTest, OtherKeyNameOrAlgorithmIsBadKey) {
  EXPECT_EQ(verdict(ldns_signed_query("other-key.").wire), TsigVerdict::bad_key);
  EXPECT_EQ(verdict(ldns_signed_query("transfer-key.", "hmac-sha512.").wire), TsigVerdict::bad_key);
  EXPECT_EQ(verdict(ldns_signed_query("transfer-key.", "hmac-sha1.").wire), TsigVerdict::bad_key);
}

TEST(TsigVerifyTest, TimeOutsideTheFudgeIsBadTime) {
  const auto now = std::time(nullptr);
  const auto wire = ldns_signed_query().wire;
  EXPECT_EQ(verdict(wire, now + 3600), TsigVerdict::bad_time);
  EXPECT_EQ(verdict(wire, now - 3600), TsigVerdict::bad_time);
  EXPECT_EQ(verdict(wire, now + 250), TsigVerdict::ok);
  // The request's own smaller fudge applies; a larger one is capped at 300 s.
  const auto tight = ldns_signed_query("transfer-key.", "hmac-sha256.", kSecret, 10).wire;
  EXPECT_EQ(verdict(tight, now + 60), TsigVerdict::bad_time);
  const auto loose = ldns_signed_query("transfer-key.", "hmac-sha256.", kSecret, 30000).wire;
  EXPECT_EQ(verdict(loose, now + 600), TsigVerdict::bad_time);
  // A bad key or MAC is reported before the time (RFC 8945 section 5.2).
  EXPECT_EQ(verdict(ldns_signed_query("other-key.").wire, now + 3600), TsigVerdict::bad_key);
}

TEST(TsigVerifyTest, UnsignedAndMalformedRequests) {
  EXPECT_EQ(verdict(to_wire(make_query(7).get())), TsigVerdict::unsigned_message);
  const auto wire = ldns_signed_query().wire;
  // An A record after the TSIG: the TSIG is no longer last.
  auto after = wire;
  const Bytes a_record = {0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
  after.insert(after.end(), a_record.begin(), a_record.end());
  after[11] = static_cast<std::uint8_t>(after[11] + 1);
  EXPECT_EQ(verdict(after), TsigVerdict::malformed);
  auto trailing = wire;
  trailing.push_back(0);
  EXPECT_EQ(verdict(trailing), TsigVerdict::malformed);
  EXPECT_EQ(verdict(Bytes(wire.begin(), wire.end() - 1)), TsigVerdict::malformed);
  EXPECT_EQ(verdict(Bytes(wire.begin(), wire.begin() + 5)), TsigVerdict::malformed);
}

// ---- TsigSigner ----------------------------------------------------------------

// One AXFR response message carrying `records` (presentation format).
Bytes response(std::uint16_t id, const std::vector<std::string>& records) {
  auto pkt = make_query(id);
  ldns_pkt_set_qr(pkt.get(), true);
  ldns_pkt_set_aa(pkt.get(), true);
  for (const auto& text : records) {
    ldns_rr* rr = nullptr;
    EXPECT_EQ(ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr), LDNS_STATUS_OK) << text;
    ldns_pkt_push_rr(pkt.get(), LDNS_SECTION_ANSWER, rr);
  }
  return to_wire(pkt.get());
}

const std::vector<std::vector<std::string>> kMessages = {
    {"example. 3600 IN SOA ns.example. admin.example. 7 3600 600 86400 300",
     "example. 3600 IN NS ns.example."},
    {"ns.example. 3600 IN A 192.0.2.1", "www.example. 60 IN A 192.0.2.2"},
    {"example. 3600 IN SOA ns.example. admin.example. 7 3600 600 86400 300"},
};

Bytes sign(TsigSigner& signer, const Bytes& message, std::time_t now) {
  Bytes buffer(message.size() + kTsigReserve);
  std::copy(message.begin(), message.end(), buffer.begin());
  const auto size = signer.sign(buffer, message.size(), now);
  EXPECT_GT(size, message.size());
  buffer.resize(size);
  return buffer;
}

std::vector<Bytes> signed_response(const std::string& request_mac, std::time_t now,
                                   const std::string& line = kLine) {
  TsigSigner signer(parse_tsig_key(line), request_mac);
  std::vector<Bytes> out;
  for (const auto& records : kMessages) out.push_back(sign(signer, response(0x4242, records), now));
  return out;
}

// ldns's verdict on one message given the prior MAC (request or previous).
bool ldns_verifies(const Bytes& wire, const ldns_rdf* prior, bool timers_only,
                   const char* secret = kSecret) {
  auto pkt = parse(wire);
  return pkt && ldns_pkt_tsig_verify_next(pkt.get(), wire.data(), wire.size(), "transfer-key.",
                                          secret, prior, timers_only ? 1 : 0);
}

Rdf mac_rdf(const std::string& mac) {
  Bytes data(mac.begin(), mac.end());  // ldns takes a non-const pointer (and copies)
  return Rdf(ldns_native2rdf_int16_data(data.size(), data.data()));
}

Rdf mac_of(const Bytes& wire) {
  auto pkt = parse(wire);
  return Rdf(ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(pkt.get()), 3)));
}

TEST(TsigSignerTest, EveryMessageVerifiesWithLdnsInOrder) {
  const auto request = ldns_signed_query();
  const auto messages = signed_response(request.mac, std::time(nullptr));
  auto prior = mac_rdf(request.mac);
  for (std::size_t i = 0; i < messages.size(); ++i) {
    EXPECT_TRUE(ldns_verifies(messages[i], prior.get(), i > 0)) << "message " << i;
    prior = mac_of(messages[i]);
  }
}

TEST(TsigSignerTest, WrongOrderOrWrongChainFails) {
  const auto request = ldns_signed_query();
  const auto m = signed_response(request.mac, std::time(nullptr));
  const auto other_request =
      mac_rdf(ldns_signed_query("transfer-key.", "hmac-sha256.", kOtherSecret).mac);
  EXPECT_FALSE(ldns_verifies(m[0], other_request.get(), false));
  EXPECT_FALSE(ldns_verifies(m[0], mac_rdf(request.mac).get(), true));  // needs all variables
  EXPECT_FALSE(ldns_verifies(m[1], mac_rdf(request.mac).get(), true));  // skipped the first
  EXPECT_FALSE(ldns_verifies(m[2], mac_of(m[0]).get(), true));          // reordered
  EXPECT_FALSE(ldns_verifies(m[1], mac_of(m[0]).get(), false));         // timers only
  EXPECT_FALSE(ldns_verifies(m[1], mac_of(m[0]).get(), true, kOtherSecret));
  EXPECT_TRUE(ldns_verifies(m[1], mac_of(m[0]).get(), true));
}

TEST(TsigSignerTest, RecordFieldsAndArcount) {
  const std::time_t now = 1700000000;
  const auto m = signed_response("request-mac", now);
  auto pkt = parse(m[0]);
  const ldns_rr* tsig = ldns_pkt_tsig(pkt.get());
  ASSERT_NE(tsig, nullptr);
  EXPECT_EQ(ldns_rr_get_class(tsig), LDNS_RR_CLASS_ANY);
  Rdf owner(ldns_dname_new_frm_str("transfer-key."));
  EXPECT_EQ(ldns_dname_compare(ldns_rr_owner(tsig), owner.get()), 0);
  const std::uint8_t* t = ldns_rdf_data(ldns_rr_rdf(tsig, 1));
  std::uint64_t signed_at = 0;
  for (int i = 0; i < 6; ++i) signed_at = (signed_at << 8) | t[i];
  EXPECT_EQ(signed_at, static_cast<std::uint64_t>(now));
  EXPECT_EQ(ldns_rdf2native_int16(ldns_rr_rdf(tsig, 2)), 300);     // fudge
  EXPECT_EQ(ldns_rdf2native_int16(ldns_rr_rdf(tsig, 4)), 0x4242);  // original ID
  EXPECT_EQ(ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5)), 0);       // error
  EXPECT_EQ(m[0][11], 1);                                          // ARCOUNT counts the TSIG
}

TEST(TsigSignerTest, OtherAlgorithmsVerifyWithLdns) {
  for (const char* algorithm : {"hmac-sha1", "hmac-sha512"}) {
    const auto m = signed_response("r", std::time(nullptr),
                                   std::string(algorithm) + ":transfer-key:" + kSecret);
    EXPECT_TRUE(ldns_verifies(m[0], mac_rdf("r").get(), false)) << algorithm;
    EXPECT_TRUE(ldns_verifies(m[1], mac_of(m[0]).get(), true)) << algorithm;
  }
}

TEST(TsigSignerTest, NoRoomReturnsZeroAndKeepsTheChain) {
  const auto request = ldns_signed_query();
  TsigSigner signer(parse_tsig_key(kLine), request.mac);
  auto message = response(1, kMessages[0]);
  Bytes tight(message.size() + 20);
  std::copy(message.begin(), message.end(), tight.begin());
  EXPECT_EQ(signer.sign(tight, message.size(), std::time(nullptr)), 0u);
  // Still the first message: it verifies against the request MAC.
  EXPECT_TRUE(
      ldns_verifies(sign(signer, message, std::time(nullptr)), mac_rdf(request.mac).get(), false));
}

TEST(TsigSignerTest, AnEmptyRequestMacSignsARequest) {
  TsigSigner signer(parse_tsig_key(kLine), "");
  const auto notify = sign(signer, to_wire(make_query(9).get()), std::time(nullptr));
  EXPECT_EQ(verdict(notify), TsigVerdict::ok);
  EXPECT_TRUE(ldns_verifies(notify, nullptr, false));
}

// ---- kdig and dig as clients ---------------------------------------------------

// Accepts one TCP connection on 127.0.0.1, verifies its request with
// verify_request and answers the three kMessages signed by a TsigSigner with
// `signing_line` (the right key, or a wrong one as a control).
class FakeAxfrServer {
 public:
  explicit FakeAxfrServer(std::string signing_line) : signing_line_(std::move(signing_line)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    const timeval timeout{20, 0};  // accept() gives up if no client comes
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd_, 1) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error(std::string("fake server: ") + std::strerror(errno));
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeAxfrServer() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  // After the client is done.
  TsigVerdict request_verdict() {
    if (thread_.joinable()) thread_.join();
    return verdict_;
  }

 private:
  static bool read_exactly(int fd, std::uint8_t* data, std::size_t size) {
    for (std::size_t done = 0; done < size;) {
      const auto n = ::recv(fd, data + done, size - done, 0);
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }
  // False once the client has gone (it hangs up on a message it rejects).
  static bool write_message(int fd, const Bytes& message) {
    Bytes framed = {static_cast<std::uint8_t>(message.size() >> 8),
                    static_cast<std::uint8_t>(message.size())};
    framed.insert(framed.end(), message.begin(), message.end());
    return ::send(fd, framed.data(), framed.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(framed.size());
  }
  void serve() {
    const int client = ::accept(fd_, nullptr, nullptr);
    if (client < 0) return;
    std::array<std::uint8_t, 2> length{};
    Bytes request;
    if (read_exactly(client, length.data(), 2)) {
      request.resize(static_cast<std::size_t>(length[0] << 8 | length[1]));
      if (!read_exactly(client, request.data(), request.size())) request.clear();
    }
    const auto check = verify_request(request, parse_tsig_key(kLine), std::time(nullptr));
    verdict_ = check.verdict;
    if (check.verdict == TsigVerdict::ok) {
      TsigSigner signer(parse_tsig_key(signing_line_), check.request_mac);
      const auto id = static_cast<std::uint16_t>(request[0] << 8 | request[1]);
      for (const auto& records : kMessages) {
        if (!write_message(client, sign(signer, response(id, records), std::time(nullptr)))) break;
      }
    }
    ::close(client);
  }

  std::string signing_line_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  TsigVerdict verdict_ = TsigVerdict::malformed;
  std::thread thread_;
};

bool command_exists(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

std::string run(const std::string& command) {
  std::string output;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen((command + " 2>&1").c_str(), "r"), ::pclose);
  if (!pipe) return "(popen failed)";
  std::array<char, 4096> chunk{};
  while (std::fgets(chunk.data(), chunk.size(), pipe.get()) != nullptr) output += chunk.data();
  return output;
}

// The client's AXFR command for `tool` against the fake server.
std::string axfr_command(const std::string& tool, std::uint16_t port) {
  const auto target = " @127.0.0.1 -p " + std::to_string(port) + " example. AXFR";
  const auto tcp = tool == "kdig" ? " +tcp" : "";
  return "timeout 30 " + tool + " -y " + kLine + tcp + target;
}

class TsigClientTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!command_exists(GetParam())) GTEST_SKIP() << GetParam() << " not installed";
  }
};

// What kdig ("ERROR: reply verification ... (failed to verify TSIG)") and dig
// ("Couldn't verify signature", "WARNING -- Some TSIG could not be validated")
// print when a message's TSIG does not verify.
bool reports_tsig_failure(const std::string& output) {
  // Each has a space or ';', so it cannot occur inside a base64 MAC.
  for (const char* marker : {";; ERROR", ";; WARNING", "Couldn't verify", "failed to verify"}) {
    if (output.find(marker) != std::string::npos) return true;
  }
  return false;
}

TEST_P(TsigClientTest, SignedRequestAndSignedTransferInterOperate) {
  FakeAxfrServer server(kLine);
  const auto output = run(axfr_command(GetParam(), server.port()));
  EXPECT_EQ(server.request_verdict(), TsigVerdict::ok) << output;
  EXPECT_FALSE(reports_tsig_failure(output)) << output;
  // All three messages arrived: the closing SOA is in the last one.
  EXPECT_NE(output.find("www.example."), std::string::npos) << output;
  EXPECT_NE(output.find(GetParam() == "kdig" ? "3 messages" : "messages 3"), std::string::npos)
      << output;
}

TEST_P(TsigClientTest, AResponseSignedWithAnotherKeyIsRejected) {
  FakeAxfrServer server(std::string("hmac-sha256:transfer-key:") + kOtherSecret);
  const auto output = run(axfr_command(GetParam(), server.port()));
  EXPECT_EQ(server.request_verdict(), TsigVerdict::ok) << output;
  EXPECT_TRUE(reports_tsig_failure(output)) << output;
}

INSTANTIATE_TEST_SUITE_P(Clients, TsigClientTest, ::testing::Values("kdig", "dig"));

}  // namespace
}  // namespace xfr
