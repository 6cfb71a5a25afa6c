/** The device MQTT client: the socket loop around the session (docs/design/mqtt-client.md). */
export { ClientPhase, MqttClient, type ClientPhaseName, type ClientStats, type MqttClientDeps, type MqttClientOptions } from './client.ts';
export { CloseCause, type ClientEvent, type ClientOwnEvent, type CloseCauseName } from './events.ts';
