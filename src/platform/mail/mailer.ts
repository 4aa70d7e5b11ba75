import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import nodemailer from 'nodemailer';
import type { Logger } from 'pino';
import type { Config } from '../../config/config.js';

export interface MailMessage {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  /** What kind of email this is (password_reset, ...), for the outbox file name and logs. */
  readonly kind: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
}

/**
 * Development and test mail: each message is written as a JSON file (0600) into the
 * outbox folder, where a developer (or a test) can read the link it carries.
 */
export class OutboxMailer implements Mailer {
  constructor(
    private readonly directory: string,
    private readonly from: string,
  ) {}

  async send(message: MailMessage): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    const file = path.join(this.directory, `${Date.now()}-${message.kind}-${randomUUID()}.json`);
    await writeFile(file, `${JSON.stringify({ from: this.from, ...message }, null, 2)}\n`, { mode: 0o600 });
  }
}

export class SmtpMailer implements Mailer {
  private readonly transport: nodemailer.Transporter;

  constructor(
    smtpUrl: string,
    private readonly from: string,
  ) {
    this.transport = nodemailer.createTransport(smtpUrl);
  }

  async send(message: MailMessage): Promise<void> {
    await this.transport.sendMail({ from: this.from, to: message.to, subject: message.subject, text: message.text });
  }
}

/** SMTP when SMTP_URL is set (required in production), else the outbox folder. */
export function createMailer(config: Config, logger: Logger): Mailer {
  if (config.mail.smtpUrl) return new SmtpMailer(config.mail.smtpUrl, config.mail.from);
  logger.info({ outbox: config.mail.outboxDir }, 'emails are written to the outbox folder');
  return new OutboxMailer(config.mail.outboxDir, config.mail.from);
}
