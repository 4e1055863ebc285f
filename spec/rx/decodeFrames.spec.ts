import { map } from 'rxjs';
import { decodeFrames, ErrorCode, HEADER_SIZE, PeerDisconnectedError, ProtocolError } from '../../src';
import { frame, plain, wire } from '../helpers/frames';
import { testScheduler } from '../helpers/marbles';

const a = frame({ id: 1, payload: Buffer.from('alpha') });
const b = frame({ id: 2, flags: 1, payload: Buffer.from('') });
const c = frame({ id: 3, encoding: 2, payload: Buffer.from('gamma!') });
const bytes = wire(a, b, c);
const values = { a: plain(a), b: plain(b), c: plain(c) };

/** The error of a stream that ended inside a frame. */
const peerGone = expect.objectContaining({ code: ErrorCode.PEER_DISCONNECTED, constructor: PeerDisconnectedError });

/** Matches any ProtocolError with the given code. */
function protocolError(code: string) {
  return expect.objectContaining({ code, constructor: ProtocolError });
}

describe('decodeFrames (marbles)', () => {
  it('emits every frame of a chunk that holds several', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const source = cold('--x 9ms |', { x: bytes });
      expectObservable(source.pipe(decodeFrames(), map(plain))).toBe('--(abc) 5ms |', values);
    });
  });

  it('emits a frame when its last byte arrives, for a split at every offset', () => {
    for (let at = 1; at < bytes.length; at++) {
      const first = bytes.subarray(0, at);
      const second = bytes.subarray(at);
      const before = [a, b, c].filter((_, i) => wire(...[a, b, c].slice(0, i + 1)).length <= at);
      const after = [a, b, c].slice(before.length);
      const group = (frames: typeof before) => {
        const names = frames.map((f) => 'abc'[f.id - 1]).join('');
        return names.length > 1 ? `(${names})` : names || '-';
      };
      testScheduler().run(({ cold, expectObservable }) => {
        // x at frame 0, y at frame 10, completion at frame 20 (a group's parentheses take frames too).
        const source = cold('x 9ms y 9ms |', { x: first, y: second });
        const g1 = group(before);
        const g2 = group(after);
        const expected = `${g1} ${10 - g1.length}ms ${g2} ${10 - g2.length}ms |`;
        expectObservable(source.pipe(decodeFrames(), map(plain))).toBe(expected, values);
      });
    }
  });

  it('handles frames arriving one byte a frame', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const one = wire(a);
      const marbles = Array.from(one, (_, i) => String.fromCharCode(0x100 + i)).join('') + '|';
      const chunkValues = Object.fromEntries(Array.from(one, (byte, i) => [String.fromCharCode(0x100 + i), Buffer.from([byte])]));
      const last = String.fromCharCode(0x100 + one.length - 1);
      const expected = '-'.repeat(one.length - 1) + 'a|';
      expect(marbles.endsWith(`${last}|`)).toBe(true);
      expectObservable(cold(marbles, chunkValues).pipe(decodeFrames(), map(plain))).toBe(expected, values);
    });
  });

  it('errors when a header declares more than maxFrameSize', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const big = wire(frame({ payload: Buffer.alloc(100) }));
      const source = cold('a-b-c|', { a: wire(a), b: big.subarray(0, HEADER_SIZE), c: big.subarray(HEADER_SIZE) });
      expectObservable(source.pipe(decodeFrames({ maxFrameSize: 64 }), map(plain))).toBe(
        'a-#',
        values,
        protocolError(ErrorCode.FRAME_TOO_LARGE),
      );
    });
  });

  it('errors on bad magic', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const source = cold('a-b-|', { a: wire(a), b: Buffer.from('SSH-2.0-OpenSSH_9.6\r\n') });
      expectObservable(source.pipe(decodeFrames(), map(plain))).toBe('a-#', values, protocolError(ErrorCode.PROTOCOL));
    });
  });

  it('errors with ERR_IPC_PEER_DISCONNECTED when the source completes inside a frame', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const source = cold('a-b|', { a: wire(a), b: wire(b).subarray(0, 5) });
      expectObservable(source.pipe(decodeFrames(), map(plain))).toBe('a--#', values, peerGone);
    });
  });

  it('unsubscribing mid-frame drops the partial frame and unsubscribes the source', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const whole = wire(b);
      const source = cold('a-x-y|', { a: wire(a), x: whole.subarray(0, 4), y: whole.subarray(4) });
      expectObservable(source.pipe(decodeFrames(), map(plain)), '^--!').toBe('a---', values);
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('gives each subscription its own decoder', () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const half = bytes.subarray(0, 10);
      const source = cold('x|', { x: half });
      const decoded = source.pipe(decodeFrames());
      expectObservable(decoded).toBe('-#', undefined, peerGone);
      expectObservable(decoded).toBe('-#', undefined, peerGone);
    });
  });
});
