// OpenTelemetry tracing, off unless configured: with OTEL_EXPORTER_OTLP_ENDPOINT
// (or ..._TRACES_ENDPOINT, or CIMQ_TRACING=on for the default localhost:4318)
// spans go to an OTLP/HTTP collector. BullMQ's own telemetry hook (bullmq-otel)
// carries the trace from the producer's enqueue to the daemon's job; cimq adds
// a span for each native call. Off, nothing is loaded and spans are no-ops.
import type { Telemetry } from 'bullmq';

export interface Tracing {
  telemetry: Telemetry;
  /** Flushes spans still buffered; call before exit. */
  shutdown(): Promise<void>;
}

export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true' || /^(0|off|false|no)$/i.test(env.CIMQ_TRACING ?? '')) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || /^(1|on|true|yes)$/i.test(env.CIMQ_TRACING ?? ''));
}

export async function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing | null> {
  if (!tracingConfigured(env)) return null;
  const [{ NodeTracerProvider }, { BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }, { BullMQOtel }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('bullmq-otel'),
  ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || serviceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  provider.register();
  return {
    telemetry: new BullMQOtel({ tracerName: 'cimq' }) as unknown as Telemetry,
    shutdown: () => provider.shutdown(),
  };
}
