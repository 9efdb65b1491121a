/**
 * Follow the kernel of the notebook (or console) in focus, so the sidebar
 * lists it first and the status bar shows it.
 */

import type { JupyterFrontEnd } from '@jupyterlab/application';
import type { ISessionContext } from '@jupyterlab/apputils';
import type { Widget } from '@lumino/widgets';

/** The session context of a widget that has one (notebook panels, consoles). */
function sessionContextOf(widget: Widget | null): ISessionContext | null {
  const context = (widget as unknown as { sessionContext?: ISessionContext } | null)?.sessionContext;
  return context && typeof context === 'object' && 'kernelChanged' in context ? context : null;
}

/**
 * Call `onChange` with the current widget's kernel id (or null) now and
 * whenever the focus or that widget's kernel changes. Returns a function
 * that stops following.
 */
export function followCurrentKernel(
  app: JupyterFrontEnd,
  onChange: (kernelId: string | null) => void
): () => void {
  let context: ISessionContext | null = null;
  const report = (): void => onChange(context?.session?.kernel?.id ?? null);
  const attach = (): void => {
    if (context) {
      context.kernelChanged.disconnect(report);
      context.sessionChanged.disconnect(report);
    }
    context = sessionContextOf(app.shell.currentWidget);
    if (context) {
      context.kernelChanged.connect(report);
      context.sessionChanged.connect(report);
    }
    report();
  };
  app.shell.currentChanged?.connect(attach);
  attach();
  return () => {
    app.shell.currentChanged?.disconnect(attach);
    if (context) {
      context.kernelChanged.disconnect(report);
      context.sessionChanged.disconnect(report);
    }
  };
}
