import type { Observable } from 'rxjs';
import { Observable as RxObservable } from 'rxjs/internal/Observable';
import type { Duplex } from 'node:stream';

/**
 * The chunks a socket (any Duplex) receives, as an Observable: `'data'` → next, `'error'` → error,
 * `'close'` → complete. Unsubscribing removes the listeners (it does not close the socket).
 */
export function fromSocket(socket: Duplex): Observable<Buffer> {
  return new RxObservable<Buffer>((subscriber) => {
    const onData = (chunk: Buffer) => subscriber.next(chunk);
    const onError = (error: Error) => subscriber.error(error);
    const onClose = () => subscriber.complete();
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    return () => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
  });
}
