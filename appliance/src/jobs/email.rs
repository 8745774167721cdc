//! E-mail notifications (`crate::mail`): one job per message, sent
//! through the configured relay. A relay that is away or answers 4xx is
//! retried with the kind's backoff; a 5xx answer (an address the relay
//! refuses, bad credentials) is permanent.

use std::sync::Arc;

use super::context::JobCtx;
use super::registry::{Handler, JobRun};
use super::Services;
use crate::mail::smtp::{Message, SmtpError};
use crate::queue::JobError;
use crate::telemetry::{Kind, Span};

/// The `email` kind's handler.
pub struct EmailHandler(pub Arc<Services>);

impl Handler for EmailHandler {
    fn run<'a>(&'a self, ctx: &'a JobCtx) -> JobRun<'a> {
        Box::pin(run(ctx, &self.0))
    }
}

async fn run(ctx: &JobCtx, services: &Services) -> Result<(), JobError> {
    let Some(email) = &services.email else {
        return Err(JobError::Permanent(
            "e-mail is not configured on the server that ran this job (smtp.host is empty)"
                .to_string(),
        ));
    };
    let field = |name: &str| -> Result<String, JobError> {
        ctx.job.payload[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| JobError::Permanent(format!("the message has no {name}")))
    };
    let (to, subject, body) = (field("to")?, field("subject")?, field("body")?);
    crate::config::check_address(&to).map_err(JobError::Permanent)?;
    ctx.check()?;
    let mut span = Span::start("smtp send", Kind::Client, None);
    span.set("server.address", email.mailer.host().to_string());
    let sent = email
        .mailer
        .send(&Message {
            to: &to,
            subject: &subject,
            body: &body,
        })
        .await;
    if let Err(e) = &sent {
        span.fail(e.to_string());
    }
    span.end();
    sent.map_err(|e| match e {
        SmtpError::Transient(m) => JobError::Transient(m),
        SmtpError::Permanent(m) => JobError::Permanent(m),
    })
}
