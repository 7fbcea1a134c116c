#include "dns/record_builders.h"

#include "dns/layout.h"

namespace dns {

namespace {

constexpr std::size_t kMaxPointerOffset = 0x3FFF;
// SRV RDATA: PRIORITY, WEIGHT, PORT, then TARGET.
constexpr std::size_t kSrvTargetOffset = 6;

std::uint16_t address_type(const store::IpAddress& address) {
  return address.is_v4() ? rrtype::a : rrtype::aaaa;
}

bool add_address_record(MessageBuilder& message, Section section, Owner owner,
                        const store::IpAddress& address, std::uint32_t ttl) {
  return message.add_record(section, owner, address_type(address), rrclass::in, ttl,
                            std::span<const std::uint8_t>(address.bytes.data(), address.size()));
}

std::optional<Name> srv_target(const store::Instance& instance, const Name& apex) {
  return Name::from_labels({instance.id(), instance.service(), layout::kInstanceLabel}, apex);
}

}  // namespace

bool add_address_records(MessageBuilder& message, Section section, Owner owner,
                         const InstanceSelection& selection, std::uint16_t type, std::uint32_t ttl,
                         std::size_t limit, std::size_t& added) {
  std::size_t cursor = 0;
  while (const store::Instance* instance = selection.next(cursor)) {
    if (limit != 0 && added >= limit) break;
    const store::IpAddress& address = instance->registration.address;
    if (address_type(address) != type) continue;
    if (!add_address_record(message, section, owner, address, ttl)) return false;
    ++added;
  }
  return true;
}

bool add_srv_records(MessageBuilder& message, const InstanceSelection& selection,
                     const RecordSettings& settings) {
  std::size_t cursor = 0;
  while (const store::Instance* instance = selection.next(cursor)) {
    const auto target = srv_target(*instance, settings.apex);
    if (!target) continue;  // id + service + apex longer than a name may be
    const store::Registration& registration = instance->registration;
    const bool added = message.add_record(
        Section::answer, Owner::question(), rrtype::srv, rrclass::in, settings.ttl,
        [&](MessageBuilder& m) {
          return m.put_u16(settings.srv_priority) && m.put_u16(registration.weight) &&
                 m.put_u16(registration.port) && m.put_name(*target, settings.compress_srv_targets);
        });
    if (!added) return false;
  }
  return true;
}

bool add_srv_target_addresses(MessageBuilder& message, const InstanceSelection& selection,
                              const RecordSettings& settings) {
  std::size_t cursor = 0;
  bool complete = true;
  message.for_each_record(Section::answer, [&](std::size_t rdata_offset, std::size_t) {
    const store::Instance* instance = complete ? selection.next(cursor) : nullptr;
    // Skip instances whose target could not be written, as add_srv_records did.
    while (instance != nullptr && !srv_target(*instance, settings.apex)) {
      instance = selection.next(cursor);
    }
    if (instance == nullptr) return;
    const std::size_t target_offset = rdata_offset + kSrvTargetOffset;
    const store::IpAddress& address = instance->registration.address;
    if (target_offset <= kMaxPointerOffset) {
      const auto owner = Owner::pointer(static_cast<std::uint16_t>(target_offset));
      complete = add_address_record(message, Section::additional, owner, address, settings.ttl);
    } else {
      // Beyond the reach of a compression pointer: spell the name out.
      const Name target = *srv_target(*instance, settings.apex);
      complete = add_address_record(message, Section::additional, Owner::name(target), address,
                                    settings.ttl);
    }
  });
  return complete;
}

}  // namespace dns
