/**
 * Topic Name and Topic Filter rules (MQTT 5 §4.7, 3.1.1 §4.7): a name has no
 * wildcard; a filter is non-empty, '#' only as the whole last level, '+'
 * only as a whole level; a shared subscription ($share/Name/filter, §4.8.2)
 * has a non-empty share name without wildcards and a filter after it.
 * Each check returns a cause, or undefined when the text is valid.
 */

export function topicNameProblem(topic: string): string | undefined {
  if (topic.indexOf('+') >= 0 || topic.indexOf('#') >= 0) return 'topic name contains a wildcard';
  return undefined;
}

export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'empty topic filter';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level.indexOf('#') >= 0 && (level !== '#' || i !== levels.length - 1)) return `'#' not alone as the last level of ${JSON.stringify(filter)}`;
    if (level.indexOf('+') >= 0 && level !== '+') return `'+' not alone in a level of ${JSON.stringify(filter)}`;
  }
  if (levels[0] === '$share') {
    if (levels.length < 3) return 'shared subscription without a topic filter';
    const name = levels[1];
    if (name.length === 0 || name === '+' || name === '#') return 'shared subscription with an empty or wildcard share name';
  }
  return undefined;
}

export function isSharedFilter(filter: string): boolean {
  return filter.startsWith('$share/');
}
