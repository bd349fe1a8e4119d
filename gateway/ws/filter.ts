// Key filters with MQTT-style wildcards (MQTT 5.0 §4.7), applied to record keys read as UTF-8.
// Levels are separated by `/`; `+` matches exactly one level, `#` (last level only) matches
// the parent level and any number of levels below it. A record without a key matches only
// a filter of `#` (the empty key is one empty level).
import { BrokerError } from '../../host/errors/index.js';

/** Longest filter accepted, characters: a key filter is a path, not a document. */
export const KEY_FILTER_CHARS_MAX = 1_024;

export type KeyMatcher = (key: string | null) => boolean;

/** Parses a filter; BrokerError INVALID_REQUEST naming the problem when it is malformed. */
export function compileKeyFilter(filter: string): KeyMatcher {
  if (filter.length === 0) throw new BrokerError('INVALID_REQUEST', 'filter must not be empty');
  if (filter.length > KEY_FILTER_CHARS_MAX) throw new BrokerError('INVALID_REQUEST', `filter longer than ${KEY_FILTER_CHARS_MAX} characters`);
  const levels = filter.split('/');
  levels.forEach((level, i) => {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      throw new BrokerError('INVALID_REQUEST', 'filter: "#" must be a whole level and the last one'); // MQTT-4.7.1-1
    }
    if (level.includes('+') && level !== '+') throw new BrokerError('INVALID_REQUEST', 'filter: "+" must be a whole level'); // MQTT-4.7.1-2
  });
  if (!filter.includes('+') && !filter.includes('#')) return (key) => key === filter;
  return (key) => {
    if (key === null) return filter === '#';
    const parts = key.split('/');
    for (let i = 0; i < levels.length; i++) {
      const f = levels[i];
      if (f === '#') return true; // matches the parent level too: "a/#" matches "a"
      if (i >= parts.length) return false;
      if (f !== '+' && f !== parts[i]) return false;
    }
    return parts.length === levels.length;
  };
}
