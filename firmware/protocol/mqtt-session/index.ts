/** The MQTT session flow-control core (docs/spec/mqtt-session.md). */
export { backoffCeilingMs, backoffDelayMs, type BackoffOptions } from './backoff.ts';
export { DEFAULT_RECEIVE_MAXIMUM, MqttSession, SessionState, TOPIC_ALIAS, type RecordSource, type SessionEvent, type SessionOptions, type SessionStateName, type SessionStats, type SourceRecord, type Step } from './session.ts';
export { OutboxSource } from './outbox-source.ts';
