#include "dns/message_builder.h"

#include <algorithm>
#include <cstring>

namespace dns {

namespace {
// Compression pointers hold 14 bits of offset.
constexpr std::size_t kMaxPointerOffset = 0x3FFF;
}  // namespace

MessageBuilder::MessageBuilder(std::span<std::uint8_t> buffer, std::size_t limit)
    : buffer_(buffer), limit_(std::min({limit, buffer.size(), kMaxMessageSize})) {}

bool MessageBuilder::start(std::uint16_t id, std::uint16_t flags,
                           std::span<const std::uint8_t> question) {
  size_ = 0;
  counts_ = {};
  current_section_ = 0;
  compression_target_count_ = 0;
  flags_ = flags;
  if (kHeaderSize + question.size() > limit_) return false;
  std::memset(buffer_.data(), 0, kHeaderSize);
  store_u16(&buffer_[0], id);
  store_u16(&buffer_[4], question.empty() ? 0 : 1);
  size_ = kHeaderSize;
  if (!question.empty()) {
    std::memcpy(&buffer_[size_], question.data(), question.size());
    // The question name's labels are the first compression targets.
    std::size_t offset = size_;
    while (offset < size_ + question.size() && buffer_[offset] != 0) {
      remember_compression_target(offset);
      offset += 1u + buffer_[offset];
    }
    size_ += question.size();
  }
  section_start_[0] = size_;
  return true;
}

bool MessageBuilder::put_bytes(std::span<const std::uint8_t> bytes) {
  if (!fits(bytes.size())) return false;
  if (!bytes.empty()) std::memcpy(&buffer_[size_], bytes.data(), bytes.size());
  size_ += bytes.size();
  return true;
}

bool MessageBuilder::put_u16(std::uint16_t value) {
  if (!fits(2)) return false;
  store_u16(&buffer_[size_], value);
  size_ += 2;
  return true;
}

bool MessageBuilder::put_u32(std::uint32_t value) {
  if (!fits(4)) return false;
  store_u32(&buffer_[size_], value);
  size_ += 4;
  return true;
}

bool MessageBuilder::put_owner(Owner owner) {
  if (owner.name_ == nullptr) return put_u16(static_cast<std::uint16_t>(0xC000 | owner.offset_));
  return put_name(*owner.name_, true);
}

bool MessageBuilder::put_name(const Name& name, bool compress) {
  const std::size_t labels = name.label_count();
  // The longest suffix already in the message wins; labels before it are written.
  std::size_t first_shared = labels;
  int target = -1;
  if (compress) {
    for (std::size_t i = 0; i < labels; ++i) {
      target = find_compression_target(name.suffix(i));
      if (target >= 0) {
        first_shared = i;
        break;
      }
    }
  }
  const std::size_t mark = size_;
  const std::span<const std::uint8_t> wire = name.wire();
  const std::size_t prefix_length = wire.size() - name.suffix(first_shared).size();
  const std::size_t needed = prefix_length + (target >= 0 ? 2 : 1);
  if (!fits(needed)) return false;
  for (std::size_t i = 0; i < first_shared; ++i) {
    remember_compression_target(mark + (wire.size() - name.suffix(i).size()));
  }
  std::memcpy(&buffer_[size_], wire.data(), prefix_length);
  size_ += prefix_length;
  if (target >= 0) {
    store_u16(&buffer_[size_], static_cast<std::uint16_t>(0xC000 | target));
    size_ += 2;
  } else {
    buffer_[size_++] = 0;
  }
  return true;
}

int MessageBuilder::find_compression_target(std::span<const std::uint8_t> suffix) const {
  for (std::size_t i = 0; i < compression_target_count_; ++i) {
    if (name_at_equals(compression_targets_[i], suffix)) return compression_targets_[i];
  }
  return -1;
}

// Compares the (possibly compressed) name at `offset` of the message being built
// with an uncompressed wire name, ignoring ASCII case. The message is our own, but
// the walk is bounded anyway.
bool MessageBuilder::name_at_equals(std::size_t offset,
                                    std::span<const std::uint8_t> wire_name) const {
  std::size_t position = offset;
  std::size_t compared = 0;
  for (int jumps = 0; jumps < 16;) {
    if (position >= size_ || compared >= wire_name.size()) return false;
    const std::uint8_t length = buffer_[position];
    if ((length & 0xC0) == 0xC0) {
      if (position + 1 >= size_) return false;
      position = load_u16(&buffer_[position]) & 0x3FFFu;
      ++jumps;
      continue;
    }
    if (length != wire_name[compared]) return false;
    if (length == 0) return true;
    if (position + 1 + length > size_ || compared + 1 + length > wire_name.size()) return false;
    for (std::size_t k = 1; k <= length; ++k) {
      if (ascii_lower(buffer_[position + k]) != ascii_lower(wire_name[compared + k])) return false;
    }
    position += 1u + length;
    compared += 1u + length;
  }
  return false;
}

void MessageBuilder::remember_compression_target(std::size_t offset) {
  if (offset > kMaxPointerOffset || compression_target_count_ == kMaxCompressionTargets) return;
  compression_targets_[compression_target_count_++] = static_cast<std::uint16_t>(offset);
}

void MessageBuilder::rollback(std::size_t mark) {
  size_ = mark;
  while (compression_target_count_ > 0 &&
         compression_targets_[compression_target_count_ - 1] >= mark) {
    --compression_target_count_;
  }
}

std::size_t MessageBuilder::skip_record(std::size_t offset, std::size_t* rdata_offset,
                                        std::size_t* rdata_length) const {
  // Our own records: the owner is a pointer or a (partly) uncompressed name.
  while (buffer_[offset] != 0 && (buffer_[offset] & 0xC0) != 0xC0) offset += 1u + buffer_[offset];
  offset += buffer_[offset] == 0 ? 1 : 2;
  *rdata_length = load_u16(&buffer_[offset + 8]);
  *rdata_offset = offset + 10;
  return *rdata_offset + *rdata_length;
}

std::size_t MessageBuilder::finish(const OptRecord* opt) {
  store_u16(&buffer_[2], flags_);
  store_u16(&buffer_[6], counts_[0]);
  store_u16(&buffer_[8], counts_[1]);
  std::uint16_t additional = counts_[2];
  if (opt != nullptr && size_ + kOptRecordSize <= limit_) {
    std::uint8_t* p = &buffer_[size_];
    p[0] = 0;  // root owner
    store_u16(p + 1, rrtype::opt);
    store_u16(p + 3, opt->udp_payload);
    p[5] = opt->extended_rcode;
    p[6] = 0;  // EDNS version 0
    store_u16(p + 7, opt->dnssec_ok ? 0x8000 : 0);
    store_u16(p + 9, 0);  // no options
    size_ += kOptRecordSize;
    ++additional;
  }
  store_u16(&buffer_[10], additional);
  return size_;
}

}  // namespace dns
