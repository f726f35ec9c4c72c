/**
 * Galata's Playwright settings, driving Debian's Chromium (no browser download) against the server that
 * scripts/ui-test.sh starts with jupyter_server_test_config.py on $YOLOSNAP_UI_PORT.
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = process.env.YOLOSNAP_UI_PORT || '8899';

module.exports = {
  ...baseConfig,
  workers: 1,
  retries: 0,
  timeout: 120 * 1000,
  reporter: [['list']],
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    video: 'off',
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync'
      ]
    }
  }
};
