// The admin pages about operating the gateway (channels, models and prices, system status):
// path -> { page, title }. Each page module exports render(ctx, root).
export const PAGES = {};
