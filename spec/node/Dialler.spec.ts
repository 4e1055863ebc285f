// The client lifecycle through its seams: a fake node (DiallerHost) and fake connections, fake timers.
import { ClosedError, ConnectError, ErrorCode, HandshakeError, IpcError } from '../../src';
import type { Connection } from '../../src/node/Connection';
import { Dialler, type DialTarget, type DiallerHost } from '../../src/node/Dialler';
import type { NodeSocket } from '../../src/node/NodeSocket';

/** A connection as the dialler sees one: why it ended, whether that is final, and close(). */
function fakeConnection(): Connection & { closedWith?: unknown } {
  const connection = {
    error: null as Error | null,
    final: false,
    closedWith: undefined as unknown,
    close(reason: unknown) {
      connection.closedWith = reason;
      return Promise.resolve();
    },
  };
  return connection as unknown as Connection & { closedWith?: unknown };
}

function setup(target: DialTarget = { connectArgs: [1234] }, policy = { maxRetries: 3, retryTime: 100, maxRetryTime: 1000 }, failure?: Error) {
  const opened: ReturnType<typeof fakeConnection>[] = [];
  const forgotten: Dialler[] = [];
  const reported: Error[] = [];
  const host: DiallerHost = {
    open: () => {
      if (failure) throw failure;
      const connection = fakeConnection();
      opened.push(connection);
      return connection;
    },
    forget: (d) => forgotten.push(d),
    report: (e) => reported.push(e),
  };
  const socket = { name: 'hub' } as NodeSocket;
  const dialler = new Dialler(socket, target, policy, host);
  return { dialler, socket, opened, forgotten, reported };
}

/** Ends the dialler's current connection with `error` (and `final`), as the node reports it. */
function end(dialler: Dialler, error: Error | null, final = false, closing = false): Error | null {
  const connection = dialler.connection!;
  Object.assign(connection, { error, final });
  return dialler.ended(connection, closing);
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
});

describe('Dialler', () => {
  it('dials at once; start() resolves with the socket when the connection is ready', async () => {
    const { dialler, socket, opened } = setup();
    const started = dialler.start();
    expect(opened).toHaveLength(1);
    dialler.ready();
    await expect(started).resolves.toBe(socket);
  });

  it('a lost connection is dialled again after a backoff with jitter: 50–100 ms, then 100–200 ms…', () => {
    const { dialler, opened } = setup();
    void dialler.start();
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
    expect(end(dialler, new Error('ECONNREFUSED'))).toBeNull(); // a socket error is not worth an 'error' event
    jest.advanceTimersByTime(74);
    expect(opened).toHaveLength(1);
    jest.advanceTimersByTime(1); // 100 / 2 + 0.5 × 50
    expect(opened).toHaveLength(2);
    end(dialler, new Error('ECONNREFUSED'));
    jest.advanceTimersByTime(149);
    expect(opened).toHaveLength(2);
    jest.advanceTimersByTime(1); // 200 / 2 + 0.5 × 100
    expect(opened).toHaveLength(3);
  });

  it('a handshake resets the attempts', () => {
    const { dialler, opened } = setup(undefined, { maxRetries: 1, retryTime: 10, maxRetryTime: 10 });
    void dialler.start();
    for (let i = 0; i < 5; i++) {
      dialler.ready();
      end(dialler, new Error('reset'));
      jest.advanceTimersByTime(10);
    }
    expect(opened).toHaveLength(6);
  });

  it('gives up after maxRetries with ERR_IPC_CONNECT carrying the last error; the node forgets it', async () => {
    const { dialler, opened, forgotten } = setup(undefined, { maxRetries: 2, retryTime: 10, maxRetryTime: 10 });
    const started = dialler.start();
    const lastError = new Error('ECONNREFUSED');
    for (let i = 0; i < 3; i++) {
      end(dialler, lastError);
      jest.advanceTimersByTime(10);
    }
    expect(opened).toHaveLength(3);
    const error = await started.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect(error).toMatchObject({ message: expect.stringMatching(/after 3 attempts/), cause: lastError });
    expect(forgotten).toEqual([dialler]);
  });

  it('a refusal by the peer is returned for reporting while it retries, and is the final error after maxRetries', async () => {
    const { dialler } = setup(undefined, { maxRetries: 1, retryTime: 10, maxRetryTime: 10 });
    const started = dialler.start();
    const refusal = new HandshakeError(ErrorCode.NAME_IN_USE, 'taken', { retryable: true });
    expect(end(dialler, refusal)).toBe(refusal);
    jest.advanceTimersByTime(10);
    expect(end(dialler, refusal)).toBeNull(); // the pending connectTo rejects with it instead
    await expect(started).rejects.toBe(refusal);
  });

  it('a final end gives up at once; once connected, its error is for the node to report', async () => {
    const { dialler, opened } = setup();
    const started = dialler.start();
    dialler.ready();
    await started;
    const protocol = new IpcError(ErrorCode.PROTOCOL, 'garbage');
    expect(end(dialler, protocol, true)).toBe(protocol);
    jest.advanceTimersByTime(60_000);
    expect(opened).toHaveLength(1);
  });

  it('a connectVia stream is never dialled again', () => {
    const { dialler, opened, forgotten } = setup({ via: {} as never });
    void dialler.start().catch(() => undefined);
    dialler.ready();
    expect((end(dialler, null) as IpcError | null)?.code).toBe(ErrorCode.PEER_DISCONNECTED);
    jest.advanceTimersByTime(60_000);
    expect([opened.length, forgotten.length]).toEqual([1, 1]);
  });

  it('stop() while waiting to retry: no more attempts, the pending connectTo rejects with ERR_IPC_CLOSED', async () => {
    const { dialler, opened, forgotten } = setup();
    const started = dialler.start();
    end(dialler, new Error('ECONNREFUSED'));
    await dialler.stop('bye');
    jest.advanceTimersByTime(60_000);
    expect(opened).toHaveLength(1);
    expect(forgotten).toEqual([dialler]);
    await expect(started).rejects.toBeInstanceOf(ClosedError);
  });

  it('stop() while connected closes the connection, telling the peer not to reconnect; its end is not reported', () => {
    const { dialler, opened } = setup();
    void dialler.start();
    dialler.ready();
    void dialler.stop('bye');
    expect(opened[0].closedWith).toEqual({ code: ErrorCode.CLOSED, message: 'bye', reconnect: false });
    expect(end(dialler, null)).toBeNull();
    jest.advanceTimersByTime(60_000);
    expect(opened).toHaveLength(1);
  });

  it('a target that cannot even be opened gives up at once', async () => {
    const failure = new TypeError('bad port');
    const { dialler, forgotten } = setup(undefined, undefined, failure);
    await expect(dialler.start()).rejects.toBe(failure);
    expect(forgotten).toEqual([dialler]);
  });
});
