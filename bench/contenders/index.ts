import type { Contender } from '../types';
import { baseline } from './baseline';
import { ipcLinkCore, ipcLinkCoreRx } from './ipc-link-core';
import { netIpc } from './net-ipc';
import { veza } from './veza';

/** Every contender, baseline first. */
export const contenders: Contender[] = [baseline, ipcLinkCore, ipcLinkCoreRx, veza, netIpc];
