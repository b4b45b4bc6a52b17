/**
 * Wake-up signals: the page becoming visible again, the browser coming back online. After a
 * laptop sleeps or a phone leaves a tunnel, a client that waits out its backoff, or a dead
 * socket's heartbeat window, stays dark for seconds it need not; these tell it to act now.
 */

/** The part of EventTarget used here: the browser's `document` and `window`, or a test's. */
export interface WakeTarget {
  addEventListener (type: string, listener: () => void): void
  removeEventListener (type: string, listener: () => void): void
}

/** Where the signals come from: `visibilitychange` on a document, `online` on a window. */
export interface WakeSources {
  document?: WakeTarget & { readonly visibilityState: string }
  window?: WakeTarget
}

/** The browser's document and window where there are some; nothing elsewhere (Node). */
export function browserWakeSources (): WakeSources {
  const scope = globalThis as { document?: unknown, addEventListener?: unknown }
  const sources: WakeSources = {}
  const document = scope.document as WakeSources['document'] | undefined
  if (typeof document?.addEventListener === 'function') sources.document = document
  if (typeof scope.addEventListener === 'function') sources.window = scope as unknown as WakeTarget
  return sources
}

/** Calls `wake` whenever the document becomes visible or the window comes online; returns the function that stops listening. */
export function onWake (sources: WakeSources, wake: () => void): () => void {
  const { document, window } = sources
  const visible = (): void => { if (document?.visibilityState === 'visible') wake() }
  document?.addEventListener('visibilitychange', visible)
  window?.addEventListener('online', wake)
  return () => {
    document?.removeEventListener('visibilitychange', visible)
    window?.removeEventListener('online', wake)
  }
}
