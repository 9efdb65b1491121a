/**
 * Jest runs the unit tests of the model (src/model/), which is plain
 * TypeScript plus @lumino/polling and @lumino/signaling: no DOM, no
 * JupyterLab application, so ts-jest on node is all it needs.
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testRegex: '\\.spec\\.ts$',
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }]
  },
  collectCoverageFrom: ['src/model/**/*.ts'],
  testTimeout: 20000
};
