// Logging: pino writing asynchronously, so a slow terminal or pipe never blocks the proxy's event loop.
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export function createLogger(name: string, level: LevelWithSilent, format: 'json' | 'plain' = 'json'): Logger {
  const dest = pino.destination({ dest: 2, sync: false, minLength: 0 });
  const logger = pino(
    {
      name,
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      ...(format === 'plain' ? { formatters: { level: (label: string) => ({ level: label }) } } : {}),
    },
    dest,
  );
  // Flush what is queued when the process ends on purpose.
  process.once('exit', () => dest.flushSync());
  return logger;
}
