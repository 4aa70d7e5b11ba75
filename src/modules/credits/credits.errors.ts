import { AppError } from '../../errors/app-error.js';

/** CRD-8: 402 INSUFFICIENT_CREDITS, "Insufficient credits", never with amounts. */
export class InsufficientCreditsError extends AppError {
  constructor() {
    super('INSUFFICIENT_CREDITS', 'Insufficient credits');
    this.name = 'InsufficientCreditsError';
  }
}
