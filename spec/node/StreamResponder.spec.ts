// The responder's side of a stream through its seam (StreamSink): no socket, no node.
import { finalize, NEVER, Observable, Subject } from 'rxjs';
import { ErrorCode, FrameType, IpcError, Serializer } from '../../src';
import { StreamResponder, type StreamSink } from '../../src/node/StreamResponder';
import { testScheduler } from '../helpers/marbles';

interface Sent {
  type: number;
  value?: unknown;
  error?: { name: string; message: string; code?: string };
}

/** A sink that records what the stream writes (decoded), with a switchable backlog. */
function sink(): StreamSink & { sent: Sent[]; released: boolean; backlog: boolean; drain(): void; gone: boolean } {
  const codec = new Serializer();
  let wake: (() => void) | null = null;
  const s = {
    codec,
    sent: [] as Sent[],
    released: false,
    backlog: false,
    gone: false,
    checkSize: (payload: Uint8Array | string) => {
      const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
      if (length > 1024) throw new IpcError(ErrorCode.FRAME_TOO_LARGE, `${length} bytes`);
    },
    trySendFrame(type: number, _id: number, encoding: number, payload: Uint8Array | string) {
      if (s.gone) return false;
      const bytes = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload);
      s.sent.push(type === FrameType.STREAM_NEXT ? { type, value: codec.decode(bytes, encoding) } : { type });
      return true;
    },
    sendErrorIfOpen(type: number, _id: number, error: Error) {
      s.sent.push({ type, error: { name: error.name, message: error.message, code: (error as IpcError).code } });
    },
    release: () => (s.released = true),
    tookValue: () => undefined,
    get backlogged() {
      return s.backlog;
    },
    drained: () => new Promise<void>((resolve) => (wake = resolve)),
    drain() {
      s.backlog = false;
      wake?.();
    },
  };
  return s;
}

const values = (s: { sent: Sent[] }) => s.sent.filter((f) => f.type === FrameType.STREAM_NEXT).map((f) => f.value);
const types = (s: { sent: Sent[] }) => s.sent.map((f) => f.type);
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('StreamResponder (through StreamSink)', () => {
  it('an iterable is pulled one value per credit, then completes', async () => {
    const s = sink();
    const responder = new StreamResponder(s, 7, 2, 10);
    responder.start([1, 2, 3]);
    await settle();
    expect(values(s)).toEqual([1, 2]);
    responder.grant(5);
    await settle();
    expect(types(s)).toEqual([FrameType.STREAM_NEXT, FrameType.STREAM_NEXT, FrameType.STREAM_NEXT, FrameType.STREAM_COMPLETE]);
    expect(s.released).toBe(true);
  });

  it('a pulled source waits while the sink is backlogged, whatever its credits', async () => {
    const s = sink();
    s.backlog = true;
    const responder = new StreamResponder(s, 1, 1000, 10);
    responder.start([1, 2, 3]);
    await settle();
    expect(values(s)).toEqual([]);
    s.drain();
    await settle();
    expect(values(s)).toEqual([1, 2, 3]);
  });

  it('an Observable pushes: values beyond the credits wait in the buffer, beyond maxBuffer the stream overflows and the source is unsubscribed', () => {
    const s = sink();
    const source = new Subject<number>();
    let unsubscribed = false;
    const responder = new StreamResponder(s, 1, 1, 2);
    responder.start(source.pipe(finalize(() => (unsubscribed = true))));
    for (let i = 0; i < 3; i++) source.next(i);
    expect(values(s)).toEqual([0]);
    responder.grant(1);
    expect(values(s)).toEqual([0, 1]);
    source.next(3);
    source.next(4);
    expect(s.sent.at(-1)).toMatchObject({ type: FrameType.STREAM_ERROR, error: { code: ErrorCode.STREAM_OVERFLOW } });
    expect(unsubscribed).toBe(true);
  });

  it('cancel() tears the source down (its finalize runs) and sends nothing more', () => {
    const s = sink();
    let finalized = false;
    const responder = new StreamResponder(s, 1, 10, 10);
    responder.start(NEVER.pipe(finalize(() => (finalized = true))));
    responder.cancel();
    expect(finalized).toBe(true);
    expect(s.sent).toEqual([]);
    expect(s.released).toBe(true);
  });

  it('cancel() unsubscribes the source at that frame (marbles, virtual time)', () => {
    testScheduler().run(({ cold, expectSubscriptions, flush }) => {
      const s = sink();
      const source = cold('a-b-c-d-e|');
      const responder = new StreamResponder(s, 1, 10, 10);
      responder.start(source);
      cold('---x').subscribe(() => responder.cancel());
      flush();
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expect(values(s)).toEqual(['a', 'b']);
    });
  });

  it('a generator is returned on cancel (its finally runs)', async () => {
    const s = sink();
    let returned = false;
    function* forever() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        returned = true;
      }
    }
    const responder = new StreamResponder(s, 1, 3, 10);
    responder.start(forever());
    await settle();
    responder.cancel();
    await settle();
    expect([values(s), returned]).toEqual([[0, 1, 2], true]);
  });

  it('a value over the peer’s limit fails the stream with ERR_IPC_FRAME_TOO_LARGE', async () => {
    const s = sink();
    new StreamResponder(s, 1, 10, 10).start(['small', 'x'.repeat(2000)]);
    await settle();
    expect(types(s)).toEqual([FrameType.STREAM_NEXT, FrameType.STREAM_ERROR]);
    expect(s.sent[1].error?.code).toBe(ErrorCode.FRAME_TOO_LARGE);
  });

  it('an erroring source is a STREAM_ERROR with its name and message', () => {
    const s = sink();
    new StreamResponder(s, 1, 10, 10).start(new Observable((o) => o.error(new RangeError('nope'))));
    expect(s.sent).toEqual([{ type: FrameType.STREAM_ERROR, error: { name: 'RangeError', message: 'nope', code: undefined } }]);
  });

  it('a sink that is gone ends the stream and unsubscribes the source', () => {
    const s = sink();
    s.gone = true;
    let finalized = false;
    const source = new Subject<number>();
    new StreamResponder(s, 2, 10, 10).start(source.pipe(finalize(() => (finalized = true))));
    source.next(1);
    expect(finalized).toBe(true);
  });

  it('something that cannot be streamed throws TypeError after failing the stream', () => {
    const s = sink();
    expect(() => new StreamResponder(s, 1, 1, 1).start(42 as never)).toThrow(TypeError);
    expect(s.sent[0]).toMatchObject({ type: FrameType.STREAM_ERROR, error: { name: 'TypeError' } });
  });
});
