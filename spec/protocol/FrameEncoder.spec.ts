import { encodeFrame, encodeHeader, ErrorCode, HEADER_SIZE } from '../../src';

describe('encodeFrame', () => {
  it('writes the header layout of PROTOCOL.md', () => {
    const [header] = encodeFrame({ type: 1, flags: 1, id: 1, encoding: 2, payload: Buffer.from('hi') });
    expect(header.toString('hex')).toBe('494c0201010200000000000100000002');
    expect(header.length).toBe(HEADER_SIZE);
  });

  it('returns the payload itself, never a copy', () => {
    const payload = new Uint8Array(1000);
    const [, out] = encodeFrame({ type: 1, flags: 0, id: 9, encoding: 1, payload });
    expect(out).toBe(payload);
  });

  it('writes ids as unsigned 32-bit', () => {
    const header = encodeHeader(2, 0, 0xfffffffe, 0, 0);
    expect(header.readUInt32BE(8)).toBe(0xfffffffe);
  });

  it('refuses a payload the header cannot describe', () => {
    expect(() => encodeHeader(1, 0, 1, 0, 2 ** 32)).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }));
  });
});
