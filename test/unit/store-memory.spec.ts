import { describeStoreConformance } from '../support/store-conformance';

describeStoreConformance('memory tier (encoded copies)', { tiers: () => [{ type: 'memory' }] });
describeStoreConformance('memory tier (serialize: false)', {
  tiers: () => [{ type: 'memory', serialize: false }],
  copies: false,
});
