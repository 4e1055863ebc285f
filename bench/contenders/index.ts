import type { Contender } from '../types';
import { baseline } from './baseline';
import { ipcLinkCore, ipcLinkCoreRx } from './ipc-link-core';
import { ipcLinkCoreNats, natsRaw } from './nats';
import { netIpc } from './net-ipc';
import { veza } from './veza';

/** Every contender, baseline first (nats-raw runs on the nats transport only: the reference there). */
export const contenders: Contender[] = [baseline, ipcLinkCore, ipcLinkCoreRx, veza, netIpc, natsRaw, ipcLinkCoreNats];
