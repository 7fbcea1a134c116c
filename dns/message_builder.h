// Writes a DNS response into a caller-supplied buffer: header, echoed question,
// records with name compression, and the EDNS OPT record. A record that does not
// fit leaves the message unchanged and reports false, so callers drop whole records
// (never partial ones) and decide whether that means TC (answer, authority) or just
// fewer optional records (additional, RFC 2181 section 9).
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "dns/wire.h"

namespace dns {

enum class Section : std::uint8_t { answer = 0, authority = 1, additional = 2 };

// How a record's owner name is written.
class Owner {
 public:
  // A compression pointer to a name already in the message (e.g. the question).
  static Owner pointer(std::uint16_t offset) { return Owner(offset, nullptr); }
  static Owner question() { return pointer(kQuestionNameOffset); }
  // The name itself, compressed against the names written so far.
  static Owner name(const Name& name) { return Owner(0, &name); }

 private:
  friend class MessageBuilder;
  Owner(std::uint16_t offset, const Name* name) : offset_(offset), name_(name) {}
  std::uint16_t offset_;
  const Name* name_;
};

struct OptRecord {
  std::uint16_t udp_payload = 1232;
  std::uint8_t extended_rcode = 0;  // the upper 8 bits of a 12-bit RCODE
  bool dnssec_ok = false;
};

class MessageBuilder {
 public:
  // Uses at most `limit` bytes of `buffer` (the transport's size limit).
  MessageBuilder(std::span<std::uint8_t> buffer, std::size_t limit);

  // Writes the header (counts are filled by finish()) and copies `question` (the
  // query's question section, verbatim, so the client sees its own case). Returns
  // false if even that does not fit.
  bool start(std::uint16_t id, std::uint16_t flags, std::span<const std::uint8_t> question);
  // Keeps room at the end for an OPT record so that truncation never squeezes it out.
  void reserve_opt() { reserved_ = kOptRecordSize; }

  void set_flags(std::uint16_t flags) { flags_ |= flags; }
  std::uint16_t flags() const { return flags_; }

  // Appends a record whose RDATA `write_rdata(*this)` produces with the put_*
  // functions below. Sections must be filled in order. Returns false and leaves
  // the message unchanged if the record does not fit.
  template <std::invocable<MessageBuilder&> WriteRdata>
  bool add_record(Section section, Owner owner, std::uint16_t type, std::uint16_t rrclass,
                  std::uint32_t ttl, WriteRdata&& write_rdata);
  bool add_record(Section section, Owner owner, std::uint16_t type, std::uint16_t rrclass,
                  std::uint32_t ttl, std::span<const std::uint8_t> rdata) {
    return add_record(section, owner, type, rrclass, ttl,
                      [rdata](MessageBuilder& m) { return m.put_bytes(rdata); });
  }

  // RDATA writers: false when out of room.
  bool put_bytes(std::span<const std::uint8_t> bytes);
  bool put_u16(std::uint16_t value);
  bool put_u32(std::uint32_t value);
  // Writes `name`, compressed against earlier names when `compress` (RFC 1035
  // section 4.1.4); uncompressed names are still remembered as pointer targets.
  bool put_name(const Name& name, bool compress);

  std::size_t size() const { return size_; }
  std::uint16_t count(Section section) const { return counts_[static_cast<int>(section)]; }
  // Calls visit(rdata_offset, rdata_length) for each record written to `section`,
  // in order; used to point additional records at names inside earlier RDATA.
  template <typename Visit>
  void for_each_record(Section section, Visit&& visit) const;

  // Fills in flags and counts, appends the OPT record if given, and returns the
  // message size.
  std::size_t finish(const OptRecord* opt);

 private:
  bool fits(std::size_t bytes) const { return size_ + bytes + reserved_ <= limit_; }
  bool put_owner(Owner owner);
  // A compression target that equals the wire name `suffix`, or -1.
  int find_compression_target(std::span<const std::uint8_t> suffix) const;
  bool name_at_equals(std::size_t offset, std::span<const std::uint8_t> wire_name) const;
  void remember_compression_target(std::size_t offset);
  void rollback(std::size_t mark);
  std::size_t skip_record(std::size_t offset, std::size_t* rdata_offset,
                          std::size_t* rdata_length) const;

  std::span<std::uint8_t> buffer_;
  std::size_t limit_;
  std::size_t reserved_ = 0;
  std::size_t size_ = 0;
  std::uint16_t flags_ = 0;
  std::array<std::uint16_t, 3> counts_{};
  std::array<std::size_t, 3> section_start_{};
  int current_section_ = 0;
  // Offsets of names (and their suffixes) that later names may point to. A small
  // fixed table: answers repeat the question name, which is found first anyway.
  static constexpr std::size_t kMaxCompressionTargets = 64;
  std::array<std::uint16_t, kMaxCompressionTargets> compression_targets_{};
  std::size_t compression_target_count_ = 0;
};

template <std::invocable<MessageBuilder&> WriteRdata>
bool MessageBuilder::add_record(Section section, Owner owner, std::uint16_t type,
                                std::uint16_t rrclass, std::uint32_t ttl,
                                WriteRdata&& write_rdata) {
  const int index = static_cast<int>(section);
  while (current_section_ < index) section_start_[++current_section_] = size_;
  if (current_section_ != index) return false;  // sections out of order: a caller bug
  const std::size_t mark = size_;
  if (!put_owner(owner) || !put_u16(type) || !put_u16(rrclass) || !put_u32(ttl) || !put_u16(0)) {
    rollback(mark);
    return false;
  }
  const std::size_t rdata_start = size_;
  if (!write_rdata(*this) || size_ - rdata_start > 0xFFFF) {
    rollback(mark);
    return false;
  }
  store_u16(&buffer_[rdata_start - 2], static_cast<std::uint16_t>(size_ - rdata_start));
  ++counts_[index];
  return true;
}

template <typename Visit>
void MessageBuilder::for_each_record(Section section, Visit&& visit) const {
  const int index = static_cast<int>(section);
  if (index > current_section_) return;
  std::size_t offset = section_start_[index];
  for (std::uint16_t i = 0; i < counts_[index]; ++i) {
    std::size_t rdata_offset = 0;
    std::size_t rdata_length = 0;
    offset = skip_record(offset, &rdata_offset, &rdata_length);
    visit(rdata_offset, rdata_length);
  }
}

}  // namespace dns
