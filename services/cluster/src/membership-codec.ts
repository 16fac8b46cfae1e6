import type { Member, MemberState } from '@mycel/core'
import { type MemberRecord, MemberState as PbMemberState } from '@mycel/proto'

const TO_PB: Record<MemberState, PbMemberState> = {
  joining: PbMemberState.MEMBER_STATE_JOINING,
  alive: PbMemberState.MEMBER_STATE_ALIVE,
  suspect: PbMemberState.MEMBER_STATE_SUSPECT,
  left: PbMemberState.MEMBER_STATE_LEFT,
  dead: PbMemberState.MEMBER_STATE_DEAD,
}

const FROM_PB = new Map<PbMemberState, MemberState>(
  Object.entries(TO_PB).map(([k, v]) => [v, k as MemberState]),
)

export function memberToRecord(m: Member): MemberRecord {
  return {
    id: m.id,
    address: m.address,
    zone: m.zone,
    host: m.host,
    weight: m.weight,
    state: TO_PB[m.state],
    incarnation: BigInt(m.incarnation),
  }
}

/**
 * A record from the wire, or undefined when it is not usable (unknown state from a newer
 * version, missing id or address, weight not positive): such records are skipped, not trusted.
 */
export function memberFromRecord(r: MemberRecord): Member | undefined {
  const state = FROM_PB.get(r.state)
  if (state === undefined || r.id === '' || r.address === '' || !(r.weight > 0)) return undefined
  return {
    id: r.id,
    address: r.address,
    zone: r.zone || 'default',
    host: r.host,
    weight: r.weight,
    state,
    incarnation: Number(r.incarnation),
  }
}

export function membersFromRecords(records: readonly MemberRecord[]): Member[] {
  return records.map(memberFromRecord).filter((m): m is Member => m !== undefined)
}
