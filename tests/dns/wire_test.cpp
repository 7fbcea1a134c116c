// Names, name parsing (compression, loops, limits) and the message builder.
#include "dns/wire.h"

#include <gtest/gtest.h>

#include "dns/message_builder.h"
#include "test_support.h"

namespace dns {
namespace {

using testing::Bytes;

Bytes wire_of(std::string_view text) {
  const auto name = Name::from_text(text);
  EXPECT_TRUE(name.has_value()) << text;
  return {name->wire().begin(), name->wire().end()};
}

TEST(NameTest, FromTextLowercasesAndSplitsLabels) {
  const auto name = Name::from_text("WeB.Service.Discovery.");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->label_count(), 3u);
  EXPECT_EQ(name->label(0), "web");
  EXPECT_EQ(name->label(2), "discovery");
  EXPECT_EQ(name->to_text(), "web.service.discovery.");
  EXPECT_EQ(Name::from_text("web.service.discovery")->to_text(), "web.service.discovery.");
  EXPECT_EQ(Name::from_text(".")->label_count(), 0u);
  EXPECT_EQ(Name::from_text(".")->to_text(), ".");
}

TEST(NameTest, FromTextRejectsEmptyAndOversizedLabels) {
  EXPECT_FALSE(Name::from_text(""));
  EXPECT_FALSE(Name::from_text("a..b."));
  EXPECT_FALSE(Name::from_text(std::string(64, 'a') + "."));
  EXPECT_TRUE(Name::from_text(std::string(63, 'a') + "."));
  std::string long_name;
  for (int i = 0; i < 50; ++i) long_name += "abcd.";  // 250 bytes + root = 251
  EXPECT_TRUE(Name::from_text(long_name));
  EXPECT_FALSE(Name::from_text("abcde." + long_name));  // 257
}

TEST(NameTest, SuffixesAndAncestry) {
  const Name name = *Name::from_text("a.b.discovery.");
  const Name apex = *Name::from_text("DISCOVERY.");
  EXPECT_TRUE(name.is_subdomain_of(apex));
  EXPECT_TRUE(apex.is_subdomain_of(apex));
  EXPECT_FALSE(apex.is_subdomain_of(name));
  EXPECT_FALSE(Name::from_text("xdiscovery.")->is_subdomain_of(apex));
  EXPECT_TRUE(name.is_subdomain_of(Name{}));
  const auto suffix = name.suffix(2);
  EXPECT_EQ(Bytes(suffix.begin(), suffix.end()), wire_of("discovery."));
  EXPECT_EQ(Name::from_labels({"x", "Y"}, apex)->to_text(), "x.y.discovery.");
}

TEST(ReadNameTest, ReadsUncompressedNamesAndLowercases) {
  Bytes message = wire_of("x.");
  const Bytes name = {3, 'W', 'w', 'W', 2, 'i', 'O', 0};
  message.insert(message.end(), name.begin(), name.end());
  Name out;
  const auto end = read_name(message, 3, Compression::forbidden, &out);
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, message.size());
  EXPECT_EQ(out.to_text(), "www.io.");
}

TEST(ReadNameTest, FollowsBackwardPointers) {
  // "discovery." at 0, "service" + pointer at 11, "web" + pointer at 21.
  Bytes message = wire_of("discovery.");
  message.insert(message.end(), {7, 's', 'e', 'r', 'v', 'i', 'c', 'e', 0xC0, 0});
  message.insert(message.end(), {3, 'w', 'e', 'b', 0xC0, 11});
  Name out;
  const auto end = read_name(message, 21, Compression::allowed, &out);
  ASSERT_TRUE(end);
  EXPECT_EQ(*end, message.size()) << "the end is right after the first pointer";
  EXPECT_EQ(out.to_text(), "web.service.discovery.");
  EXPECT_FALSE(read_name(message, 21, Compression::forbidden, &out));
}

TEST(ReadNameTest, RejectsLoopsForwardPointersAndTruncation) {
  Name out;
  const Bytes self_loop = {0xC0, 0x00};
  EXPECT_FALSE(read_name(self_loop, 0, Compression::allowed, &out));
  const Bytes two_loop = {1, 'a', 0xC0, 4, 1, 'b', 0xC0, 0};
  EXPECT_FALSE(read_name(two_loop, 4, Compression::allowed, &out));
  EXPECT_FALSE(read_name(two_loop, 0, Compression::allowed, &out)) << "forward pointer";
  const Bytes truncated_label = {5, 'a', 'b'};
  EXPECT_FALSE(read_name(truncated_label, 0, Compression::allowed, &out));
  const Bytes truncated_pointer = {1, 'a', 0xC0};
  EXPECT_FALSE(read_name(truncated_pointer, 0, Compression::allowed, &out));
  const Bytes extended_label = {0x41, 'a', 0};
  EXPECT_FALSE(read_name(extended_label, 0, Compression::allowed, &out));
  EXPECT_FALSE(read_name({}, 0, Compression::allowed, &out));
}

TEST(ReadNameTest, RejectsNamesLongerThan255BytesEvenThroughPointers) {
  // 4 x 63-byte labels = 256 bytes with the root: too long.
  Bytes message;
  for (int i = 0; i < 4; ++i) {
    message.push_back(63);
    message.insert(message.end(), 63, 'a');
  }
  message.push_back(0);
  EXPECT_FALSE(read_name(message, 0, Compression::allowed, nullptr));
  // Three labels fit; a pointer prefixing another label to them does not.
  Bytes fits(message.begin() + 64, message.end());
  EXPECT_TRUE(read_name(fits, 0, Compression::allowed, nullptr));
  fits.push_back(63);
  fits.insert(fits.end(), 63, 'b');
  fits.insert(fits.end(), {0xC0, 0});
  EXPECT_FALSE(read_name(fits, 193, Compression::allowed, nullptr));
}

TEST(MessageBuilderTest, CompressesOwnersAgainstTheQuestionAndRollsBackRecordsThatDoNotFit) {
  Bytes question = wire_of("Web.Service.Discovery.");
  question.insert(question.end(), {0, 1, 0, 1});
  Bytes buffer(100);
  MessageBuilder message(buffer, 100);
  ASSERT_TRUE(message.start(7, flag::qr, question));
  const std::size_t after_question = message.size();

  // The apex is a suffix of the question name: "discovery." becomes a pointer.
  const Name apex = *Name::from_text("discovery.");
  const std::uint8_t address[4] = {192, 0, 2, 1};
  ASSERT_TRUE(message.add_record(Section::answer, Owner::name(apex), 1, 1, 60, address));
  EXPECT_EQ(message.size(), after_question + 2 + 10 + 4);
  EXPECT_EQ(buffer[after_question], 0xC0);
  EXPECT_EQ(buffer[after_question + 1], 12 + 4 + 8);

  // "ns1.discovery." is written as "ns1" + pointer.
  const Name ns1 = *Name::from_text("ns1.discovery.");
  ASSERT_TRUE(message.add_record(Section::answer, Owner::name(ns1), 1, 1, 60, address));
  const std::size_t second = after_question + 16;
  EXPECT_EQ(buffer[second], 3);
  EXPECT_EQ(buffer[second + 4], 0xC0);

  // A record that does not fit leaves the message as it was.
  const std::size_t before = message.size();
  const Bytes big(60, 0);
  EXPECT_FALSE(message.add_record(Section::answer, Owner::question(), 16, 1, 60, big));
  EXPECT_EQ(message.size(), before);
  EXPECT_EQ(message.count(Section::answer), 2u);

  const std::size_t size = message.finish(nullptr);
  testing::Response response(buffer.data(), size);
  ASSERT_TRUE(response.parsed());
  EXPECT_EQ(response.answer(),
            testing::records({"discovery. 60 IN A 192.0.2.1", "ns1.discovery. 60 IN A 192.0.2.1"}));
}

TEST(MessageBuilderTest, ReservedOptSpaceSurvivesAFullMessage) {
  Bytes question = wire_of("a.");
  question.insert(question.end(), {0, 1, 0, 1});
  Bytes buffer(512);
  MessageBuilder message(buffer, 60);
  ASSERT_TRUE(message.start(1, flag::qr, question));
  message.reserve_opt();
  const std::uint8_t address[4] = {1, 2, 3, 4};
  int added = 0;
  while (message.add_record(Section::answer, Owner::question(), 1, 1, 5, address)) ++added;
  EXPECT_EQ(added, 1);  // 12 + 7 + 16 = 35; a second would leave no room for the OPT
  const OptRecord opt{.udp_payload = 1232};
  EXPECT_EQ(message.finish(&opt), 35u + kOptRecordSize);
  testing::Response response(buffer.data(), 35 + kOptRecordSize);
  ASSERT_TRUE(response.parsed());
  EXPECT_TRUE(response.has_opt());
  EXPECT_EQ(response.opt_payload(), 1232);
}

}  // namespace
}  // namespace dns
