// A small reader of the pcap files tcpdump writes (`-w`), enough for the tests' checks: each IPv4 TCP
// segment with its addresses, ports, flags and payload. Link types: Ethernet, Linux cooked (v1 and v2,
// what `-i any` writes). https://www.tcpdump.org/manpages/pcap-savefile.5.html
export interface TcpSegment {
  readonly src: string;
  readonly srcPort: number;
  readonly dst: string;
  readonly dstPort: number;
  readonly syn: boolean;
  readonly payload: Buffer;
}

const LINKTYPE_ETHERNET = 1;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;

/** The IPv4 TCP segments of a capture, in order (others are skipped). */
export function tcpSegments(file: Buffer): TcpSegment[] {
  if (file.length < 24) throw new Error(`not a pcap file: ${file.length} bytes`);
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && file.readUInt32BE(0) !== 0xa1b2c3d4 && file.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error(`not a pcap file (magic ${magic.toString(16)})`);
  const u32 = (at: number) => (le ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const linkType = u32(20) & 0xffff;
  const out: TcpSegment[] = [];
  for (let at = 24; at + 16 <= file.length;) {
    const captured = u32(at + 8);
    const frame = file.subarray(at + 16, at + 16 + captured);
    at += 16 + captured;
    let ip: Buffer;
    if (linkType === LINKTYPE_ETHERNET) {
      if (frame.length < 14 || frame.readUInt16BE(12) !== 0x0800) continue;
      ip = frame.subarray(14);
    } else if (linkType === LINKTYPE_LINUX_SLL) {
      if (frame.length < 16 || frame.readUInt16BE(14) !== 0x0800) continue;
      ip = frame.subarray(16);
    } else if (linkType === LINKTYPE_LINUX_SLL2) {
      if (frame.length < 20 || frame.readUInt16BE(0) !== 0x0800) continue;
      ip = frame.subarray(20);
    } else {
      throw new Error(`pcap link type ${linkType} is not read here`);
    }
    if (ip.length < 20 || (ip[0] as number) >> 4 !== 4 || ip[9] !== 6) continue;
    const ihl = ((ip[0] as number) & 0x0f) * 4;
    const total = Math.min(ip.readUInt16BE(2), ip.length);
    const tcp = ip.subarray(ihl, total);
    if (tcp.length < 20) continue;
    const dataOffset = ((tcp[12] as number) >> 4) * 4;
    out.push({
      src: [...ip.subarray(12, 16)].join('.'),
      dst: [...ip.subarray(16, 20)].join('.'),
      srcPort: tcp.readUInt16BE(0),
      dstPort: tcp.readUInt16BE(2),
      syn: ((tcp[13] as number) & 0x02) !== 0,
      payload: tcp.subarray(dataOffset),
    });
  }
  return out;
}
