import type { Contender } from '../types';
import { baseline } from './baseline';
import { forkAdvanced } from './fork-advanced';
import { forkJson } from './fork-json';
import { ipcLinkCore, ipcLinkCoreRx } from './ipc-link-core';
import { ipcLinkCoreNats, natsRaw } from './nats';
import { netIpc } from './net-ipc';
import { veza } from './veza';
import { workerThread } from './worker-thread';

/**
 * Every contender, baseline first; nats-raw runs on the nats transports only (the reference there); then the
 * anchors: Node's own channels between a process and its child or worker.
 */
export const contenders: Contender[] = [baseline, ipcLinkCore, ipcLinkCoreRx, veza, netIpc, natsRaw, ipcLinkCoreNats, forkJson, forkAdvanced, workerThread];
