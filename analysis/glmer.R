# Fit a binomial mixed model with lme4::glmer for interpsy (analysis/glmm.py writes the inputs
# into FOLDER and reads the outputs back).
#   Rscript glmer.R FOLDER
# Inputs:  data.csv (y, fixed columns f0..fk, grouping columns g0..gm), options.csv (key, value)
# Outputs: fixed.csv, variance.csv, eta.csv, info.csv
suppressPackageStartupMessages(library(lme4))

folder <- commandArgs(trailingOnly = TRUE)[1]
options <- read.csv(file.path(folder, "options.csv"), stringsAsFactors = FALSE)
option <- function(key) options$value[options$key == key]
fixed <- strsplit(option("fixed"), ",", fixed = TRUE)[[1]]
groups <- strsplit(option("groups"), ",", fixed = TRUE)[[1]]
nagq <- as.integer(option("nagq"))
# nloptwrap (lme4's BOBYQA through nloptr) with a relative step tolerance of 1e-8. Two cases
# stop it early, both seen on small data, and the fit is then repeated with tight tolerances,
# which converge to glmer's default optimisers' likelihood: it stops right after its first
# interpolation points (a flat start), or a variance component ends near 0 (its absolute step
# tolerance of 1e-8 stopped it 0.006 logit from the optimum there); tight tolerances on every
# fit took 1.3x the fit's time on an IMI-sized study, where neither case arises
usual <- list(xtol_rel = 1e-8)
tight <- list(ftol_abs = 1e-10, xtol_abs = 1e-10, xtol_rel = 1e-12, ftol_rel = 1e-15)

classes <- c(y = "integer", setNames(rep("numeric", length(fixed)), fixed),
             setNames(rep("character", length(groups)), groups))
data <- read.csv(file.path(folder, "data.csv"), colClasses = classes)
for (g in groups) data[[g]] <- factor(data[[g]])
formula <- as.formula(paste("y ~ 0 +", paste(fixed, collapse = " + "), "+",
                            paste(sprintf("(1 | %s)", groups), collapse = " + ")))

started <- proc.time()[["elapsed"]]
fit_with <- function(tolerances) {
  glmer(formula, data = data, family = binomial, nAGQ = nagq,
        control = glmerControl(optimizer = "nloptwrap", calc.derivs = FALSE,
                               optCtrl = tolerances))
}
fit <- fit_with(usual)
parameters <- length(getME(fit, "theta")) + if (nagq > 0) length(fixef(fit)) else 0
refit <- fit@optinfo$feval <= 2 * parameters + 3 || isSingular(fit)  # an SD within 1e-4 of 0
if (refit) fit <- fit_with(tight)
fit_s <- proc.time()[["elapsed"]] - started
evaluations <- fit@optinfo$feval
# the deviance function of the same model, for the curvature in the variance components
devfun <- glmer(formula, data = data, family = binomial, nAGQ = nagq, devFunOnly = TRUE,
                control = glmerControl(nAGQ0initStep = nagq == 0))

theta <- getME(fit, "theta")
beta <- fixef(fit)
# curvature of the deviance in the variance components (the fixed effects held at their
# estimates): forward differences as in lme4's own deriv12; cov(theta) = 2 H^-1
deviance_at <- function(th) if (nagq > 0) devfun(c(th, beta)) else devfun(th)
k <- length(theta)
step <- 1e-3 * pmax(abs(theta), 0.05)
f0 <- deviance_at(theta)
single <- sapply(seq_len(k), function(i) {
  e <- replace(numeric(k), i, step[i])
  c(deviance_at(theta + e), deviance_at(theta - e))
})
hessian <- matrix(0, k, k)
for (i in seq_len(k)) {
  hessian[i, i] <- (single[1, i] - 2 * f0 + single[2, i]) / step[i]^2
  for (j in seq_len(i - 1)) {
    ei <- replace(numeric(k), i, step[i])
    ej <- replace(numeric(k), j, step[j])
    both <- deviance_at(theta + ei + ej)
    hessian[i, j] <- hessian[j, i] <- (both - single[1, i] - single[1, j] + f0) / (step[i] * step[j])
  }
}
invisible(deviance_at(theta))  # leave the deviance function at the estimate
theta_se <- rep(NA_real_, k)
inverse <- tryCatch(solve(hessian), error = function(e) NULL)
if (!is.null(inverse)) theta_se <- sqrt(pmax(diag(2 * inverse), 0))
total_s <- proc.time()[["elapsed"]] - started

write.csv(data.frame(term = names(beta), estimate = unname(beta),
                     se = sqrt(diag(as.matrix(vcov(fit, use.hessian = FALSE))))),
          file.path(folder, "fixed.csv"), row.names = FALSE)
components <- sub("\\.\\(Intercept\\)$", "", names(theta))
write.csv(data.frame(group = components, sd = unname(theta), se = theta_se),
          file.path(folder, "variance.csv"), row.names = FALSE)
write.csv(data.frame(eta = unname(predict(fit, type = "link"))), file.path(folder, "eta.csv"),
          row.names = FALSE)
messages <- c(fit@optinfo$conv$lme4$messages, fit@optinfo$warnings)
info <- c(lme4 = as.character(packageVersion("lme4")), R = R.version.string,
          nagq = nagq, evaluations = evaluations, refit_tight = refit, fit_s = fit_s,
          total_s = total_s,
          deviance = deviance(fit), loglik = as.numeric(logLik(fit)),
          optimizer_message = paste(fit@optinfo$message, collapse = " "),
          warnings = paste(unlist(messages), collapse = " | "),
          singular = isSingular(fit))
write.csv(data.frame(key = names(info), value = unname(info)), file.path(folder, "info.csv"),
          row.names = FALSE)
