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

/** The same headers and encoding whether the message goes to SMTP or to the outbox. */
function envelope(from: string, message: MailMessage): nodemailer.SendMailOptions {
  return { from, to: message.to, subject: message.subject, text: message.text, textEncoding: 'quoted-printable' };
}

/**
 * Development and test mail: each message is written as an RFC 822 file (.eml, 0600) into
 * the outbox folder, built by nodemailer exactly as it would go over SMTP, so a developer
 * opens it in a mail client (or a test reads its headers and the link it carries).
 */
export class OutboxMailer implements Mailer {
  private readonly transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });

  constructor(
    private readonly directory: string,
    private readonly from: string,
  ) {}

  async send(message: MailMessage): Promise<void> {
    const info = (await this.transport.sendMail(envelope(this.from, message))) as { message: Buffer };
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    const kind = /^[a-z_]+$/.test(message.kind) ? message.kind : 'mail';
    const file = path.join(this.directory, `${Date.now()}-${kind}-${randomUUID()}.eml`);
    await writeFile(file, info.message, { mode: 0o600 });
  }
}

export class SmtpMailer implements Mailer {
  private readonly transport: nodemailer.Transporter;

  constructor(
    smtpUrl: string,
    private readonly from: string,
  ) {
    // Bounded waits: a slow server delays the delivery worker, never a request.
    this.transport = nodemailer.createTransport(smtpUrl, { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 });
  }

  async send(message: MailMessage): Promise<void> {
    await this.transport.sendMail(envelope(this.from, message));
  }
}

/** SMTP when SMTP_URL is set (required in production), else the outbox folder. */
export function createMailer(config: Config, logger: Logger): Mailer {
  if (config.mail.smtpUrl) return new SmtpMailer(config.mail.smtpUrl, config.mail.from);
  logger.info({ outbox: config.mail.outboxDir }, 'emails are written to the outbox folder');
  return new OutboxMailer(config.mail.outboxDir, config.mail.from);
}
