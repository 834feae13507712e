/**
 * The cluster layer: delivers typed messages between members and says who is alive. It knows
 * nothing of sessions; the replication layer builds on `createClusterChannel`.
 */
import { Channel } from './channel.js';
import type { ClusterChannel, ClusterChannelOptions } from './types.js';

export type {
  ClusterChannel,
  ClusterChannelOptions,
  ClusterEvents,
  ClusterMetrics,
  MemberInfo,
  MessageHandler,
  RemovalReason,
} from './types.js';
export { PROTOCOL_VERSION } from './messages.js';

/**
 * Creates this member's cluster channel from validated options. Nothing happens on the network
 * until `start()`.
 */
export function createClusterChannel(options: ClusterChannelOptions): ClusterChannel {
  return new Channel(options);
}
