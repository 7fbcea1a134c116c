#include "dns/wire.h"

#include <algorithm>

namespace dns {

std::optional<Header> read_header(std::span<const std::uint8_t> message) {
  if (message.size() < kHeaderSize) return std::nullopt;
  const std::uint8_t* p = message.data();
  return Header{load_u16(p),     load_u16(p + 2), load_u16(p + 4),
                load_u16(p + 6), load_u16(p + 8), load_u16(p + 10)};
}

bool Name::append_label(std::span<const std::uint8_t> label) {
  if (label.empty() || label.size() > kMaxLabelLength) return false;
  // The new label replaces the root terminator and brings a new one.
  if (size_ + label.size() + 1 > kMaxNameLength) return false;
  const std::size_t at = size_ - 1u;
  wire_[at] = static_cast<std::uint8_t>(label.size());
  std::ranges::transform(label, wire_.begin() + static_cast<std::ptrdiff_t>(at + 1), ascii_lower);
  label_offsets_[label_count_++] = static_cast<std::uint8_t>(at);
  size_ = static_cast<std::uint8_t>(size_ + label.size() + 1);
  wire_[size_ - 1u] = 0;
  return true;
}

std::optional<Name> Name::from_text(std::string_view text) {
  Name name;
  if (text == ".") return name;
  if (text.ends_with('.')) text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  while (true) {
    const std::size_t dot = text.find('.');
    const std::string_view label = text.substr(0, dot);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(label.data());
    if (!name.append_label({bytes, label.size()})) return std::nullopt;
    if (dot == std::string_view::npos) return name;
    text.remove_prefix(dot + 1);
  }
}

std::optional<Name> Name::from_labels(std::initializer_list<std::string_view> labels,
                                      const Name& suffix) {
  Name name;
  const auto append = [&name](std::string_view label) {
    return name.append_label({reinterpret_cast<const std::uint8_t*>(label.data()), label.size()});
  };
  for (std::string_view label : labels) {
    if (!append(label)) return std::nullopt;
  }
  for (std::size_t i = 0; i < suffix.label_count(); ++i) {
    if (!append(suffix.label(i))) return std::nullopt;
  }
  return name;
}

std::string_view Name::label(std::size_t index) const {
  const std::size_t at = label_offsets_[index];
  return {reinterpret_cast<const char*>(wire_.data() + at + 1), wire_[at]};
}

std::span<const std::uint8_t> Name::suffix(std::size_t first_label) const {
  if (first_label >= label_count_) return {wire_.data() + size_ - 1, 1};
  const std::size_t at = label_offsets_[first_label];
  return {wire_.data() + at, size_ - at};
}

bool Name::is_subdomain_of(const Name& ancestor) const {
  if (ancestor.label_count_ > label_count_) return false;
  return std::ranges::equal(suffix(label_count_ - ancestor.label_count_), ancestor.wire());
}

std::string Name::to_text() const {
  if (label_count_ == 0) return ".";
  std::string text;
  for (std::size_t i = 0; i < label_count_; ++i) {
    text.append(label(i));
    text.push_back('.');
  }
  return text;
}

std::optional<std::size_t> read_name(std::span<const std::uint8_t> message, std::size_t offset,
                                     Compression compression, Name* out) {
  Name scratch;
  Name& name = out != nullptr ? *out : scratch;
  name = Name{};
  std::optional<std::size_t> end;  // set at the first pointer
  std::size_t position = offset;
  std::size_t lowest_target = offset;  // each jump must go below the previous one
  while (true) {
    if (position >= message.size()) return std::nullopt;
    const std::uint8_t length = message[position];
    if (length == 0) return end ? *end : position + 1;
    if ((length & 0xC0) == 0xC0) {
      if (compression == Compression::forbidden) return std::nullopt;
      if (position + 1 >= message.size()) return std::nullopt;
      const std::size_t target = load_u16(&message[position]) & 0x3FFFu;
      if (target >= lowest_target) return std::nullopt;  // forward or looping pointer
      if (!end) end = position + 2;
      lowest_target = target;
      position = target;
      continue;
    }
    if ((length & 0xC0) != 0) return std::nullopt;  // 0x40/0x80: obsolete label types
    if (position + 1 + length > message.size()) return std::nullopt;
    if (!name.append_label(message.subspan(position + 1, length))) return std::nullopt;
    position += 1u + length;
  }
}

}  // namespace dns
