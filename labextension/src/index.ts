/**
 * jupyter-resman: the "Resources" sidebar and the status-bar memory item.
 *
 * One model polls the server extension (docs/rest-api.md); the sidebar's
 * sections and the status bar only draw it.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Signal } from '@lumino/signaling';

import { ResmanClient } from './api';
import { followCurrentKernel } from './currentKernel';
import { resourcesIcon } from './icons';
import { ResourcesModel } from './model/resources';
import { DEFAULT_SETTINGS, normalizeSettings } from './model/settings';
import { ResourcesPanel, SIDEBAR_ID } from './widgets/sidebar';
import { MemoryStatusItem } from './widgets/status';

const PLUGIN_ID = 'jupyter-resman:plugin';

namespace CommandIDs {
  export const open = 'jupyter-resman:open';
  export const refresh = 'jupyter-resman:refresh';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'The Resources sidebar: kernel memory and CPU, progress, cache, checkpoints, resource providers and the registry.',
  autoStart: true,
  optional: [ISettingRegistry, IStatusBar, ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ): void => {
    let panel: ResourcesPanel | null = null;
    const model = new ResourcesModel({
      client: new ResmanClient(app.serviceManager.serverSettings),
      settings: DEFAULT_SETTINGS,
      view: { panelVisible: () => panel !== null && panel.isVisible }
    });
    panel = new ResourcesPanel(model);
    app.shell.add(panel, 'left', { rank: 650, type: 'Resources' });
    restorer?.add(panel, SIDEBAR_ID);

    followCurrentKernel(app, id => {
      model.currentKernelId = id;
    });

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show Resources Sidebar',
      icon: resourcesIcon,
      execute: () => app.shell.activateById(SIDEBAR_ID)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Resources',
      execute: () => model.refresh()
    });
    palette?.addItem({ command: CommandIDs.open, category: 'Resources' });
    palette?.addItem({ command: CommandIDs.refresh, category: 'Resources' });

    const statusActiveChanged = new Signal<unknown, void>(model);
    if (statusBar) {
      const item = new MemoryStatusItem(model, () => {
        void app.commands.execute(CommandIDs.open);
      });
      statusBar.registerStatusItem('jupyter-resman:memory', {
        item,
        align: 'left',
        rank: 2,
        isActive: () => model.settings.statusBar,
        activeStateChanged: statusActiveChanged
      });
    }

    const applySettings = (settings: ISettingRegistry.ISettings): void => {
      const before = model.settings.statusBar;
      model.settings = normalizeSettings(settings.composite);
      if (before !== model.settings.statusBar) {
        statusActiveChanged.emit();
      }
    };

    const start = (): void => void model.start();
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          applySettings(settings);
          settings.changed.connect(applySettings);
        })
        .catch(reason => {
          console.error('jupyter-resman: could not load settings, using the defaults.', reason);
        })
        .then(start);
    } else {
      start();
    }
  }
};

export default plugin;
