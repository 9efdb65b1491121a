/**
 * The sidebar's icon: a gauge, drawn with JupyterLab's icon colour classes so
 * it follows the theme like the built-in icons.
 */

import { LabIcon } from '@jupyterlab/ui-components';

const GAUGE_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 4a10 10 0 0 0-8.66 15h2.4a8 8 0 1 1 12.52 0h2.4A10 10 0 0 0 12 4z"/>
    <path d="M13.4 14.6a2 2 0 1 1-2.83-2.83l5.66-4.24z"/>
    <rect x="5" y="20" width="14" height="2" rx="1"/>
  </g>
</svg>`;

export const resourcesIcon = new LabIcon({
  name: 'jupyter-resman:resources',
  svgstr: GAUGE_SVG
});
